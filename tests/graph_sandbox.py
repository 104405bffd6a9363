"""Puente's Meta sandbox as the Graph API of tests that talk to Meta without webhooks: set up
numbers, customers and templates, script Meta's refusals, and read back what the client sent,
all through the sandbox's control API over real HTTP."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import httpx

from puente.sandbox import SandboxConfig, create_sandbox_app
from tests.conftest import LiveServer

TOKEN = "test-graph-token"  # the sandbox's system token: every WABA, never expires
_phones = itertools.count(1)


@dataclass
class GraphSandbox:
    url: str

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/_sandbox/api{path}", timeout=10, **kwargs)

    def configure(self, **changes: Any) -> None:
        answer = self.control("PATCH", "/config", json=changes)
        assert answer.status_code == 200, answer.text

    def add_number(
        self, *, coexistence: bool = False, waba_id: str | None = None, **more: Any
    ) -> dict[str, Any]:
        """A connected number (and its WABA when new); `more` as the control API takes it."""
        body: dict[str, Any] = {
            "display_phone_number": f"1555{next(_phones):07d}",
            "coexistence": coexistence,
            **more,
        }
        if waba_id is not None:
            body["waba_id"] = waba_id
        answer = self.control("POST", "/numbers", json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def customer_writes(self, number_id: str, wa_id: str, text: str = "Hola") -> str:
        """A customer's message to the number (it opens their window); returns its wamid."""
        answer = self.control(
            "POST", f"/numbers/{number_id}/inbound", json={"from": wa_id, "text": text}
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def add_template(
        self, waba_id: str, *, rejected: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        """A template Meta already holds (approved, or rejected for the reason given)."""
        answer = self.control("POST", "/templates", json={"waba_id": waba_id, **spec})
        assert answer.status_code == 201, answer.text
        template = dict(answer.json())
        if rejected is not None:
            decided = self.control(
                "POST",
                f"/templates/{template['id']}/status",
                json={"event": "REJECTED", "reason": rejected},
            )
            assert decided.status_code == 200, decided.text
        return template

    def templates(self, waba_id: str) -> list[dict[str, Any]]:
        """What Meta lists for the WABA, read through the Graph API itself."""
        answer = httpx.get(
            f"{self.url}/v23.0/{waba_id}/message_templates",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])

    def expiring_token(self, waba_ids: list[str]) -> str:
        answer = self.control("POST", "/tokens", json={"waba_ids": waba_ids, "expires_in": 60})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["access_token"])

    def expire_tokens(self) -> None:
        """Move Meta's clock past every token made by expiring_token."""
        self.advance_clock(61)

    def advance_clock(self, seconds: float) -> None:
        answer = self.control("POST", "/clock", json={"advance_seconds": seconds})
        assert answer.status_code == 200, answer.text

    def fail_next(self, code: int, *, times: int = 1, **fault: Any) -> None:
        """The next sends (or the next to `to`) answer Meta's error `code`; `status`,
        `message`, `details` and `subcode` shape the answer."""
        current = self.control("GET", "/config").json()["send_faults"]
        self.configure(send_faults=current + [{"code": code, **fault}] * times)

    def hold_sends(self) -> None:
        self.configure(hold_send_answers=True)

    def release_sends(self) -> None:
        self.configure(hold_send_answers=False)

    def sent(self) -> list[dict[str, Any]]:
        """Messages Meta accepted, in order, each with the client's `request` body."""
        answer = self.control("GET", "/sent")
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def accepted(self) -> list[dict[str, Any]]:
        """The request bodies of accepted sends, in order."""
        return [m["request"] for m in self.sent()]

    def requests(self, path_contains: str = "", method: str | None = None) -> list[dict[str, Any]]:
        """Every Graph API call, in order, with its answer status."""
        answer = self.control("GET", "/requests", params={"path_contains": path_contains})
        assert answer.status_code == 200, answer.text
        return [r for r in answer.json() if method is None or r["method"] == method]

    def send_requests(self) -> list[dict[str, Any]]:
        """Message sends (not mark-as-read or typing), accepted or not."""
        return [
            r
            for r in self.requests("/messages", "POST")
            if isinstance(r["body"], dict) and "type" in r["body"]
        ]


def start_graph_sandbox(live_server_factory: type[LiveServer], **config: Any) -> GraphSandbox:
    """A sandbox with no demo world and no webhook callback, on a free port; the factory
    stops it after the test. Status webhooks stay queued in the sandbox."""
    settings = SandboxConfig(bootstrap=False, access_token=TOKEN, **config)
    server = live_server_factory(create_sandbox_app(settings)).start()
    return GraphSandbox(server.url)
