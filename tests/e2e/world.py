"""The world the browser walks need: the sandbox playing Meta, a live Puente (with its
workers) pointed at it, the sandbox's webhooks pointed back, and the demo number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Role, Team, TeamMember, Workspace
from puente.accounts.service import do_create_user
from puente.app import create_app
from puente.channels.models import Channel, ChannelMode
from puente.config import Settings
from puente.db.session import Database
from puente.demo import ADMIN_EMAIL, DEMO_SLUG, DemoOptions, DemoSecrets
from puente.demo import seed as demo_seed
from puente.runtime import Runtime
from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE, DEMO_WABA
from tests.conftest import APP_SECRET, VERIFY_TOKEN, LiveServer
from tests.factories import PASSWORD, make_channel
from tests.waiting import wait_until


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


@dataclass
class DemoWorld:
    """What `puente demo` seeds, served by a live Puente and the sandbox, plus a supervisor
    and an agent; every user signs in with `password`."""

    puente: LiveServer
    sandbox: LiveServer
    runtime: Runtime
    control: httpx.Client
    api: httpx.Client
    password: str
    emails: dict[Role, str]


DEMO_SUPERVISOR = "supervisora@demo.puente.test"
DEMO_AGENT = "agente@demo.puente.test"


def start_demo_world(
    settings: Settings,
    db: Database,
    live_server_factory: type[LiveServer],
    *,
    chats: int,
    messages_per_chat: int,
    token: str = "sandbox-demo-token",
) -> DemoWorld:
    """Seed through `puente demo`'s own seeding (the real onboarding of both numbers, the
    history, the templates) and wait until the history import is done. The supervisor and
    the agent have no language of their own: the browser's decides."""
    settings = settings.model_copy(
        update={"meta_app_id": SandboxConfig().app_id, "meta_config_id": "sandbox"}
    )
    sandbox, puente, runtime = start_sandbox_and_puente(settings, db, live_server_factory, token)
    control = sandbox_control(sandbox, puente)
    keys = DemoSecrets(
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        sandbox_token=token,
        admin_password=PASSWORD,
    )
    options = DemoOptions(traffic=False, chats=chats, messages_per_chat=messages_per_chat)
    api_token = demo_seed(runtime, options, keys)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = session.scalars(select(Workspace).where(Workspace.slug == DEMO_SLUG)).one()
        for email, name, role in (
            (DEMO_SUPERVISOR, "Sofía Supervisora", Role.SUPERVISOR),
            (DEMO_AGENT, "Andrés Agente", Role.AGENT),
        ):
            user, _ = do_create_user(
                session, workspace=ws, email=email, password=PASSWORD, name=name, role=role
            )
            if role is Role.AGENT:
                # In the demo's support team, which routing sends new conversations to:
                # the agent sees them (offline, routing gives them to the others).
                team = session.scalars(select(Team).where(Team.workspace_id == ws.id)).one()
                session.add(TeamMember(workspace_id=ws.id, team_id=team.id, user_id=user.id))
    api = httpx.Client(
        base_url=puente.url + "/api/v1",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=30,
    )

    def imported() -> bool:
        channels = api.get("/channels").json()
        coex = [c for c in channels if c["mode"] == ChannelMode.COEXISTENCE.value]
        return bool(coex) and api.get(f"/channels/{coex[0]['id']}/status").json()["progress"] == 100

    wait_until(imported, seconds=120, what="the demo's history import")
    emails = {Role.OWNER: ADMIN_EMAIL, Role.SUPERVISOR: DEMO_SUPERVISOR, Role.AGENT: DEMO_AGENT}
    return DemoWorld(puente, sandbox, runtime, control, api, PASSWORD, emails)
