"""Puente and the Meta sandbox wired together over real HTTP, as in the demo: Puente's
Graph base URL is the sandbox, and the sandbox's webhooks go to Puente's endpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.runtime import Runtime
from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.engine import Sandbox
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE, DEMO_WABA
from tests.conftest import APP_SECRET, VERIFY_TOKEN, LiveServer
from tests.factories import make_token, make_workspace
from tests.waiting import wait_until

SANDBOX_TOKEN = "coex-sandbox-token"
NUMBER, PHONE, WABA = DEMO_NUMBER, DEMO_PHONE, DEMO_WABA


@dataclass
class Coex:
    puente: LiveServer
    sandbox_server: LiveServer
    api: httpx.Client  # Puente's REST API with a workspace token
    control: httpx.Client  # the sandbox's control API
    graph: httpx.Client  # the sandbox's Graph API with its system token
    workspace_id: int
    db: Database

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.puente.server.config.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    @property
    def sandbox(self) -> Sandbox:
        sb: Sandbox = self.sandbox_server.server.config.app.state.sandbox  # type: ignore[attr-defined]
        return sb

    def start(
        self, method: str = "coexistence", phone: str = PHONE, **extra: Any
    ) -> dict[str, Any]:
        res = self.api.post(
            "/channels/onboardings", json={"method": method, "phone": phone, **extra}
        )
        assert res.status_code == 201, res.text
        return dict(res.json())

    def confirm(self, onboarding: dict[str, Any], share_history: bool = True) -> None:
        ref = self.signup_ref(onboarding["id"])
        res = self.control.post(
            f"/signups/{ref}/confirm",
            json={"confirm_code": onboarding["confirm_code"], "share_history": share_history},
        )
        assert res.status_code == 200, res.text

    def signup_ref(self, onboarding_id: int) -> str:
        from puente.channels.models import Onboarding

        with self.db.read(unscoped="test") as session:
            row = session.get(Onboarding, onboarding_id)
            assert row is not None and row.signup_ref
            return row.signup_ref

    def poll(self, onboarding_id: int) -> dict[str, Any]:
        res = self.api.get(f"/channels/onboardings/{onboarding_id}")
        assert res.status_code == 200, res.text
        return dict(res.json())

    def onboard(self, method: str = "coexistence", phone: str = PHONE, **extra: Any) -> int:
        """The whole flow; returns the new channel's id."""
        share = extra.pop("share_history", True)
        started = self.start(method, phone, **extra)
        if method == "coexistence":
            self.confirm(started, share_history=share)
        done = self.poll(started["id"])
        assert done["state"] == "connected", done
        return int(done["channel_id"])

    def status(self, channel_id: int) -> dict[str, Any]:
        res = self.api.get(f"/channels/{channel_id}/status")
        assert res.status_code == 200, res.text
        return dict(res.json())

    def wait_status(
        self, channel_id: int, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = wait_until(
            lambda: (s := self.status(channel_id)) and predicate(s) and s, what=what
        )
        return result


@pytest.fixture
def make_coex(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[Callable[..., Coex]]:
    clients: list[httpx.Client] = []

    def factory(**setting_overrides: Any) -> Coex:
        sandbox_server = live_server_factory(
            create_sandbox_app(
                SandboxConfig(
                    app_secret=APP_SECRET,
                    verify_token=VERIFY_TOKEN,
                    access_token=SANDBOX_TOKEN,
                    status_delays=(0.0, 0.01, 0.02),
                    backoff_base=0.05,
                    template_review_delay=0.05,
                    history_chunk_messages=25,
                )
            )
        ).start()
        wired = settings.model_copy(
            update={
                "graph_base_url": sandbox_server.url,
                "meta_app_id": SandboxConfig().app_id,
                "meta_app_secret": SecretStr(APP_SECRET),
                **setting_overrides,
            }
        )
        puente = live_server_factory(create_app(wired, db, run_workers=True)).start()
        control = httpx.Client(base_url=f"{sandbox_server.url}/_sandbox/api", timeout=30)
        res = control.patch("/config", json={"callback_url": f"{puente.url}/webhooks/whatsapp"})
        assert res.status_code == 200, res.text
        with db.unit_of_work(unscoped="test") as session:
            ws = make_workspace(session)
            token = make_token(session, ws)
            workspace_id = ws.id
        api = httpx.Client(
            base_url=f"{puente.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        graph = httpx.Client(
            base_url=f"{sandbox_server.url}/v23.0",
            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        )
        clients.extend([control, api, graph])
        return Coex(puente, sandbox_server, api, control, graph, workspace_id, db)

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def coex(make_coex: Callable[..., Coex]) -> Coex:
    return make_coex()
