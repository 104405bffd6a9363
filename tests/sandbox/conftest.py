"""A live sandbox plus a small webhook receiver that checks signatures, both over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.seed import DEMO_NUMBER, DEMO_WABA

APP_SECRET = "receiver-secret"
VERIFY = "receiver-verify"
TOKEN = "test-token"
NUMBER = DEMO_NUMBER
WABA = DEMO_WABA
LUCIA = "573001112233"


@dataclass
class Receiver:
    """Records every POST; answers with `statuses` in turn (then 200)."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    handshakes: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    verify_token: str = VERIFY
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def verify(request: Request) -> Response:
            q = dict(request.query_params)
            self.handshakes.append(q)
            if q.get("hub.mode") == "subscribe" and q.get("hub.verify_token") == self.verify_token:
                return PlainTextResponse(q["hub.challenge"])
            return PlainTextResponse("forbidden", status_code=403)

        async def receive(request: Request) -> Response:
            raw = await request.body()
            expected = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
            header = request.headers.get("x-hub-signature-256", "")
            with self.lock:
                if not hmac.compare_digest(expected, header):
                    self.bad_signatures += 1
                    return PlainTextResponse("bad signature", status_code=401)
                status = self.statuses.pop(0) if self.statuses else 200
                self.posts.append({"body": json.loads(raw), "raw": raw, "status": status})
            return PlainTextResponse("ok", status_code=status)

        return Starlette(
            routes=[
                Route("/hook", verify, methods=["GET"]),
                Route("/hook", receive, methods=["POST"]),
            ]
        )

    def changes(
        self, field_name: str | None = None, *, acked_only: bool = True
    ) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            posts = list(self.posts)
        for post in posts:
            if acked_only and post["status"] != 200:
                continue
            for entry in post["body"]["entry"]:
                for change in entry["changes"]:
                    if field_name is None or change["field"] == field_name:
                        out.append({**change, "waba_id": entry["id"], "entry": entry})
        return out

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError("the expected webhooks did not arrive")

    def wait_changes(self, field_name: str, count: int, **kw: Any) -> list[dict[str, Any]]:
        return self.wait_for(
            lambda: len(self.changes(field_name, **kw)) >= count and self.changes(field_name, **kw)
        )

    def statuses_of(self, wamid: str) -> list[dict[str, Any]]:
        return [
            s
            for c in self.changes("messages")
            for s in c["value"].get("statuses", [])
            if s["id"] == wamid
        ]


@dataclass
class Harness:
    url: str
    graph: httpx.Client
    control: httpx.Client
    receiver: Receiver
    raw: httpx.Client

    def send(self, body: dict[str, Any], number: str = NUMBER) -> httpx.Response:
        return self.graph.post(
            f"/{number}/messages", json={"messaging_product": "whatsapp", **body}
        )

    def text(self, to: str, body: str = "hola", **extra: Any) -> httpx.Response:
        return self.send({"to": to, "type": "text", "text": {"body": body}, **extra})

    def inbound(self, sender: str = LUCIA, number: str = NUMBER, **body: Any) -> dict[str, Any]:
        res = self.control.post(f"/numbers/{number}/inbound", json={"from": sender, **body})
        assert res.status_code == 201, res.text
        return dict(res.json())

    def config(self, **patch: Any) -> dict[str, Any]:
        res = self.control.patch("/config", json=patch)
        assert res.status_code == 200, res.text
        return dict(res.json())


SandboxFactory = Callable[..., Harness]


CLIENT_TIMEOUT = 30.0


@pytest.fixture
def make_sandbox(live_server_factory: Any) -> Iterator[SandboxFactory]:
    clients: list[httpx.Client] = []

    def factory(**overrides: Any) -> Harness:
        receiver = Receiver()
        hook = live_server_factory(receiver.app()).start()
        options: dict[str, Any] = {
            "callback_url": f"{hook.url}/hook",
            "app_secret": APP_SECRET,
            "verify_token": VERIFY,
            "access_token": TOKEN,
            "status_delays": (0.0, 0.01, 0.02),
            "backoff_base": 0.05,
            "template_review_delay": 0.05,
        }
        options.update(overrides)
        server = live_server_factory(create_sandbox_app(SandboxConfig(**options))).start()
        # httpx's 5 s default failed two control calls in full CI runs with both legs and
        # the browsers on two cores: the sandbox answered, late. A slow answer is not what
        # these tests check.
        graph = httpx.Client(
            base_url=f"{server.url}/v23.0",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=CLIENT_TIMEOUT,
        )
        control = httpx.Client(base_url=f"{server.url}/_sandbox/api", timeout=CLIENT_TIMEOUT)
        raw = httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT)
        clients.extend([graph, control, raw])
        return Harness(server.url, graph, control, receiver, raw)

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> Harness:
    return make_sandbox()
