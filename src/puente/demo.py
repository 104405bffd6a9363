"""`puente demo` / `make demo`: Puente and the Meta sandbox in one process, wired together
and seeded, with no internet and no accounts anywhere.

The sandbox serves the Graph API, the phone page and signed webhooks on its own port;
Puente's Graph base URL points at it and its webhooks come back to Puente. On the first
run a workspace, an admin, a coexistence number (onboarded through the same code path as
a real onboarding, with six months of history) and a plain Cloud API number are created.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select

from puente.accounts.models import Role, Workspace
from puente.accounts.service import do_create_user, do_create_workspace
from puente.accounts.tokens import do_create_token
from puente.automation.demo import seed_demo_automation
from puente.automation.kb_demo import seed_demo_knowledge_base
from puente.channels.models import Channel, OnboardingMethod, OnboardingState
from puente.channels.onboarding import (
    access_onboarding,
    advance_sandbox_signup,
    do_start_sandbox_signup,
)
from puente.config import Settings
from puente.db.migrate import upgrade
from puente.reports.csat_settings import SETTING as SURVEY
from puente.reports.csat_settings import Mode, SurveySettings
from puente.reports.demo import seed_demo_reports
from puente.runtime import Runtime

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
ADMIN_EMAIL = "admin@demo.puente.test"
NEW_NUMBER_PHONE = "15550100200"
CUSTOMER_LINES = [
    "Hola, ¿siguen abiertos?",
    "¿Tienen envío hoy a Chapinero?",
    "Buenas, quiero saber el precio del combo familiar",
    "¿Me confirman si llegó mi transferencia?",
    "Gracias, todo perfecto 🙌",
    "¿Puedo cambiar la talla de lo que compré?",
    "¿Aceptan Nequi?",
    "Necesito factura a nombre de mi empresa",
]


@dataclass
class DemoOptions:
    sandbox_port: int = 8001
    traffic: bool = True
    chats: int = 200
    messages_per_chat: int = 15
    traffic_min_seconds: float = 20.0
    traffic_max_seconds: float = 40.0


@dataclass
class DemoSecrets:
    """Generated once per data folder so restarts keep the same login and webhooks."""

    app_secret: str
    verify_token: str
    sandbox_token: str
    admin_password: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DemoSecrets:
        path = data_dir / "demo.json"
        if path.exists():
            return cls(**json.loads(path.read_text("utf-8")))
        made = cls(
            app_secret=secrets.token_hex(16),
            verify_token=secrets.token_hex(8),
            sandbox_token="EAAdemo" + secrets.token_urlsafe(16),
            admin_password="demo-" + secrets.token_urlsafe(9),
        )
        path.write_text(json.dumps(made.__dict__), "utf-8")
        path.chmod(0o600)
        return made


def sandbox_url(settings: Settings, options: DemoOptions) -> str:
    return f"http://{settings.host}:{options.sandbox_port}"


def demo_settings(settings: Settings, options: DemoOptions, keys: DemoSecrets) -> Settings:
    from puente.sandbox.config import SandboxConfig

    return settings.model_copy(
        update={
            "graph_base_url": sandbox_url(settings, options),
            "meta_app_id": SandboxConfig().app_id,
            "meta_app_secret": SecretStr(keys.app_secret),
            "meta_verify_token": SecretStr(keys.verify_token),
            "meta_config_id": "sandbox",
            # The demo has no mail server: its invitations and resets show on /dev/mail.
            "dev_mail": True,
            # The demo runs on the loopback with its sandbox: the receiver a newcomer points
            # a webhook at (examples/webhook_receiver.py) runs on this machine too.
            "webhooks_allow_private": True,
        }
    )


def build_sandbox(settings: Settings, options: DemoOptions, keys: DemoSecrets) -> Any:
    from puente.sandbox import SandboxConfig, create_sandbox_app

    base = sandbox_url(settings, options)
    return create_sandbox_app(
        SandboxConfig(
            callback_url=f"{settings.base_url.rstrip('/')}/webhooks/whatsapp",
            app_secret=keys.app_secret,
            verify_token=keys.verify_token,
            access_token=keys.sandbox_token,
            public_url=base,
            state_file=settings.data_dir / "sandbox.json",
            batch_size=50,
            freeze_gc=True,
        )
    )


def is_seeded(runtime: Runtime) -> bool:
    with runtime.db.read() as session:
        return session.scalar(select(Workspace.id).where(Workspace.slug == DEMO_SLUG)) is not None


def seed(runtime: Runtime, options: DemoOptions, keys: DemoSecrets) -> str:
    """Create the demo world through the real onboarding; returns an API token."""
    from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE

    with runtime.db.unit_of_work() as session:
        ws = do_create_workspace(
            session, name="Tienda La Esquina", slug=DEMO_SLUG, timezone="America/Bogota"
        )
        owner, _ = do_create_user(
            session,
            workspace=ws,
            email=ADMIN_EMAIL,
            password=keys.admin_password,
            name="Admin Demo",
            role=Role.OWNER,
            locale="es",
        )
        token = do_create_token(session, workspace_id=ws.id, name="demo").secret
        seed_demo_knowledge_base(session, ws)
        workspace_id, owner_id = ws.id, owner.id
    control = httpx.Client(base_url=runtime.settings.graph_base_url + "/_sandbox/api", timeout=60)
    with control:
        res = control.post(
            f"/numbers/{DEMO_NUMBER}/history",
            json={"chats": options.chats, "messages": options.messages_per_chat, "seed": 2026},
        )
        res.raise_for_status()
        _onboard(runtime, control, workspace_id, OnboardingMethod.COEXISTENCE, DEMO_PHONE)
        _onboard(runtime, control, workspace_id, OnboardingMethod.NEW_NUMBER, NEW_NUMBER_PHONE)
    _sync_templates(runtime, workspace_id)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        channel_id = session.scalar(
            select(Channel.id).where(
                Channel.workspace_id == workspace_id, Channel.phone_number_id == DEMO_NUMBER
            )
        )
        assert channel_id is not None
        seed_demo_automation(session, workspace_id, owner_id, channel_id, keys.admin_password)
        seed_demo_reports(session, workspace_id)
        # Closing a conversation asks the customer to rate the help (reply buttons, then a
        # comment), so the survey can be answered on the sandbox's phone.
        channel = session.get(Channel, channel_id)
        assert channel is not None
        survey = SurveySettings(mode=Mode.BUTTONS.value, language="es", follow_up=True)
        channel.settings = {**(channel.settings or {}), SURVEY: survey.as_json()}
    return token


def _onboard(
    runtime: Runtime,
    control: httpx.Client,
    workspace_id: int,
    method: OnboardingMethod,
    phone: str,
) -> None:
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        row = do_start_sandbox_signup(
            session,
            runtime.settings,
            workspace_id=workspace_id,
            method=method,
            phone=phone,
            import_history=True,
        )
        onboarding_id, ref, code = row.id, row.signup_ref, row.confirm_code
    if method is OnboardingMethod.COEXISTENCE:
        # What the owner does on the phone: type the code and agree to share history.
        res = control.post(
            f"/signups/{ref}/confirm", json={"confirm_code": code, "share_history": True}
        )
        res.raise_for_status()
    advance_sandbox_signup(runtime, workspace_id, onboarding_id)
    with runtime.db.read(scope=workspace_id) as session:
        row = access_onboarding(session, workspace_id, onboarding_id)
        if row.state != OnboardingState.CONNECTED.value:
            raise RuntimeError(f"demo onboarding of +{phone} failed: {row.error}")


def _sync_templates(runtime: Runtime, workspace_id: int) -> None:
    from puente.channels.service import list_channels
    from puente.outbound.templates.service import do_sync_templates

    with runtime.db.read(scope=workspace_id) as session:
        wabas = sorted({c.waba_id for c in list_channels(session, workspace_id)})
    for waba in wabas:
        try:
            with runtime.db.unit_of_work(scope=workspace_id) as session:
                do_sync_templates(session, runtime, workspace_id=workspace_id, waba_id=waba)
        except Exception:
            log.exception("demo: template sync of WABA %s failed", waba)


class Traffic(threading.Thread):
    """A customer writes now and then (every 20-40 s by default) until stopped."""

    def __init__(self, sandbox: str, options: DemoOptions, rng: random.Random | None = None):
        super().__init__(name="demo-traffic", daemon=True)
        self.sandbox = sandbox
        self.options = options
        self.rng = rng or random.Random()
        self.stop_event = threading.Event()

    def run(self) -> None:
        from puente.sandbox.seed import CUSTOMERS, DEMO_NUMBER

        with httpx.Client(base_url=self.sandbox + "/_sandbox/api", timeout=10) as control:
            while not self.stop_event.wait(
                self.rng.uniform(self.options.traffic_min_seconds, self.options.traffic_max_seconds)
            ):
                wa_id, name = self.rng.choice(sorted(CUSTOMERS.items()))
                try:
                    control.post(
                        f"/numbers/{DEMO_NUMBER}/inbound",
                        json={
                            "from": wa_id,
                            "name": name,
                            "type": "text",
                            "text": self.rng.choice(CUSTOMER_LINES),
                        },
                    )
                except httpx.HTTPError:
                    log.warning("demo traffic: the sandbox did not answer")


class ThreadServer:
    """uvicorn in a daemon thread (the sandbox, beside Puente)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("a demo server did not start (is the port free?)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def banner(settings: Settings, options: DemoOptions, keys: DemoSecrets) -> str:
    from puente.sandbox.seed import DEMO_NUMBER

    sb = sandbox_url(settings, options)
    base = settings.base_url.rstrip("/")
    return "\n".join(
        [
            "",
            "Puente demo is running (no internet needed).",
            f"  Inbox:      {base}/",
            f"  Channels:   {base}/channels",
            f"  API docs:   {base}/api/v1/docs",
            f"  Phone page: {sb}/_sandbox/phone  (owner's app: {sb}/_sandbox/phone/{DEMO_NUMBER}/owner)",
            f"  Sign in:    {ADMIN_EMAIL}  /  {keys.admin_password}",
            "  Live traffic: " + ("on (--no-traffic turns it off)" if options.traffic else "off"),
            "",
        ]
    )


def run_demo(settings: Settings, options: DemoOptions | None = None) -> None:
    from puente.app import create_app

    options = options or DemoOptions()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keys = DemoSecrets.load_or_create(settings.data_dir)
    settings = demo_settings(settings, options, keys)
    upgrade(settings.sqlalchemy_url())
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    fresh = not is_seeded(runtime)
    if fresh:
        # A sandbox world left from an earlier database would not match the new one.
        (settings.data_dir / "sandbox.json").unlink(missing_ok=True)
    sandbox = ThreadServer(
        build_sandbox(settings, options, keys), settings.host, options.sandbox_port
    )
    sandbox.start()
    puente = ThreadServer(app, settings.host, settings.port)
    puente.start()
    traffic: Traffic | None = None
    try:
        if fresh:
            print("Seeding the demo: onboarding the numbers through the sandbox…", flush=True)
            token = seed(runtime, options, keys)
            print(f"API token (shown once): {token}", flush=True)
        print(banner(settings, options, keys), flush=True)
        if options.traffic:
            traffic = Traffic(sandbox_url(settings, options), options)
            traffic.start()
        while puente.thread.is_alive() and sandbox.thread.is_alive():
            puente.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if traffic is not None:
            traffic.stop_event.set()
        puente.stop()
        sandbox.stop()
