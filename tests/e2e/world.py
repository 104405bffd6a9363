"""The world the browser walks need: the sandbox playing Meta, a live Puente (with its
workers) pointed at it, the sandbox's webhooks pointed back, and the demo number."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.db.session import Database
from puente.runtime import Runtime
from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE, DEMO_WABA
from tests.conftest import APP_SECRET, VERIFY_TOKEN, LiveServer
from tests.factories import PASSWORD, make_channel


def start_sandbox_and_puente(
    settings: Settings,
    db: Database,
    live_server_factory: type[LiveServer],
    token: str,
    **sandbox_options: Any,
) -> tuple[LiveServer, LiveServer, Runtime]:
    """The sandbox (accepting `token`) and Puente whose Graph client talks to it."""
    sandbox = live_server_factory(
        create_sandbox_app(
            SandboxConfig(
                app_secret=APP_SECRET,
                verify_token=VERIFY_TOKEN,
                access_token=token,
                **sandbox_options,
            )
        )
    ).start()
    app = create_app(
        settings.model_copy(update={"graph_base_url": sandbox.url}), db, run_workers=True
    )
    puente = live_server_factory(app).start()
    return sandbox, puente, app.state.runtime


def add_demo_number(
    session: Session, workspace: Workspace, runtime: Runtime, token: str
) -> Channel:
    """The sandbox's coexistence number, with the token Puente sends with."""
    channel = make_channel(
        session,
        workspace,
        phone_number_id=DEMO_NUMBER,
        waba_id=DEMO_WABA,
        display_phone_number=DEMO_PHONE,
        mode=ChannelMode.COEXISTENCE,
    )
    channel.access_token_encrypted = runtime.secrets.encrypt(token)
    return channel


def sandbox_control(sandbox: LiveServer, puente: LiveServer) -> httpx.Client:
    """The sandbox's control API, after pointing its webhooks at Puente."""
    control = httpx.Client(base_url=f"{sandbox.url}/_sandbox/api", timeout=20)
    res = control.patch("/config", json={"callback_url": f"{puente.url}/webhooks/whatsapp"})
    assert res.status_code == 200, res.text
    return control


def sign_in_browser(browser: Any, url: str, email: str, *, height: int = 800) -> Any:
    """A fresh browser context signed in at `url`'s inbox; returns its page. The generous
    default wait is for a shared, busy machine, not for Puente."""
    context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": height})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(url + "/inbox")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    return page
