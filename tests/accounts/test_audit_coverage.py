"""Every state-changing route writes its audit entry, or is exempt for a stated reason.

`puente.accounts.audit_policy` names, for each POST/PUT/PATCH/DELETE route of the web UI
and of /api/v1, the action it records, or why it records none. Here every route of the
application is checked against that list (a route in neither fails with its method and
path), then one walk through HTTP calls every audited route as the right person or
token, against the Meta sandbox, and checks that the expected entry appeared, in the
person's (or token's) name, and that the chain still verifies."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select, update

from puente.accounts import audit
from puente.accounts.audit_policy import AUDITED, EXEMPT
from puente.accounts.auth import do_invite, do_request_reset
from puente.accounts.models import ApiToken as TokenRow
from puente.accounts.models import AuditEntry, AuthLink, Role, Team, User, Workspace
from puente.app import create_app
from puente.automation.kb_models import KbEntry
from puente.automation.workflows.models import WorkflowRun
from puente.channels.models import Channel
from puente.config import Settings
from puente.contacts.models import Contact, Segment
from puente.conversations.models import Message, Snippet
from puente.db.base import utcnow
from puente.db.session import Database
from puente.ingest.models import WebhookChange, WebhookEvent
from puente.outbound.models import BroadcastRecipient, MessageTemplate, OutboxItem
from puente.sandbox import SandboxConfig, create_sandbox_app
from puente.sandbox.seed import DEMO_NUMBER, DEMO_PHONE, DEMO_WABA
from puente.secrets import secret_box
from tests.accounts.test_route_walk import STATE_CHANGING
from tests.conftest import APP_SECRET, VERIFY_TOKEN, LiveServer
from tests.factories import (
    PASSWORD,
    make_contact,
    make_conversation,
    make_message,
    make_token,
    make_user,
)
from tests.webclient import WebClient, previous_code

SANDBOX_TOKEN = "EAAauditSandboxToken1"
SCRIPT = {"x-inbox": "1"}  # the inbox's script: answered with a fragment, not a redirect
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def state_changing_routes(app: FastAPI) -> set[str]:
    """ "METHOD /path" of every state-changing route, the API's under /api/v1 (the same
    walk as tests/accounts/test_route_walk.py, which includes lazily mounted routers)."""
    found: set[str] = set()
    for ctx in iter_route_contexts(app.routes):
        for method in (ctx.methods or set()) & STATE_CHANGING:
            found.add(f"{method} {ctx.path}")
    api = next(r for r in app.routes if getattr(r, "path", "") == "/api/v1")
    for ctx in iter_route_contexts(api.app.routes):  # type: ignore[attr-defined]
        for method in (ctx.methods or set()) & STATE_CHANGING:
            found.add(f"{method} /api/v1{ctx.path}")
    return found


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


def test_every_state_changing_route_is_audited_or_exempt(app: FastAPI) -> None:
    routes = state_changing_routes(app)
    assert "POST /inbox/c/{conversation_id}/close" in routes
    assert "DELETE /api/v1/contacts/{contact_id}" in routes
    neither = sorted(routes - set(AUDITED) - set(EXEMPT))
    assert neither == [], (
        "state-changing routes with no audit entry and no exemption "
        f"(add them to puente/accounts/audit_policy.py): {neither}"
    )
    assert set(AUDITED) & set(EXEMPT) == set()
    gone = sorted((set(AUDITED) | set(EXEMPT)) - routes)
    assert gone == [], f"the audit policy names routes that do not exist: {gone}"
    assert all(reason.strip() for reason in EXEMPT.values())


def test_the_security_page_lists_the_policy() -> None:
    text = DOCS.read_text(encoding="utf-8")
    actions = {a for names in AUDITED.values() for a in names}
    missing = sorted(a for a in actions if f"`{a}`" not in text)
    assert missing == [], f"docs/security.md does not list these audited actions: {missing}"
    exempt = sorted(r for r in EXEMPT if f"`{r}`" not in text)
    assert exempt == [], f"docs/security.md does not list these exempt routes: {exempt}"


# -- the walk ------------------------------------------------------------------------------


@dataclass
class World:
    db: Database
    settings: Settings
    app: FastAPI
    sandbox: LiveServer
    owner: WebClient
    ids: dict[str, Any] = field(default_factory=dict)
    api_client: TestClient | None = None

    def web(self) -> WebClient:
        return WebClient(TestClient(self.app))

    def member(self, email: str, password: str = PASSWORD) -> WebClient:
        web = self.web()
        assert web.login(email, password).status_code == 200
        return web

    @property
    def api(self) -> httpx.Client:
        assert self.api_client is not None
        return self.api_client

    def scalar(self, query: Any) -> Any:
        with self.db.read(unscoped="test") as session:
            return session.scalar(query)

    def write(self, change: Callable[[Any], Any]) -> Any:
        with self.db.unit_of_work(unscoped="test") as session:
            return change(session)

    def sandbox_signup(self, phone: str) -> dict[str, Any]:
        with httpx.Client(base_url=f"{self.sandbox.url}/_sandbox/api", timeout=30) as control:
            res = control.post("/signups", json={"mode": "new", "phone": phone})
            assert res.status_code == 201, res.text
            signup: dict[str, Any] = res.json()
            return signup


@dataclass(frozen=True)
class Step:
    route: str  # "METHOD /path" as in the policy
    actions: tuple[str, ...]
    call: Callable[[World], httpx.Response]


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 400, (response.status_code, response.text[:500])
    return response


def _inbox(w: World, path: str, data: dict[str, Any]) -> httpx.Response:
    return w.owner.post(path, data, headers=SCRIPT, follow_redirects=False)


def _post(web: WebClient, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
    return web.post(path, data or {}, follow_redirects=False)


def _conversation(w: World) -> str:
    return f"/inbox/c/{w.ids['conversation']}"


def _contact(w: World, key: str = "ana") -> str:
    return f"/contacts/{w.ids[key]}"


def _merge_id(w: World, keep: str) -> int:
    from puente.contacts.models import ContactMerge

    found = w.scalar(select(ContactMerge.id).where(ContactMerge.contact_id == w.ids[keep]))
    assert found is not None, f"no merge into {keep}"
    return int(found)


def _setup(w: World) -> httpx.Response:
    w.owner.refresh_csrf("/setup")
    form = {
        "workspace": "Tienda Audit",
        "name": "Olga Owner",
        "email": "owner@example.com",
        "password": PASSWORD,
        "timezone": "UTC",
    }
    return _post(w.owner, "/setup", form)


def _connect_demo_number(w: World) -> httpx.Response:
    form = {
        "phone_number_id": DEMO_NUMBER,
        "waba_id": DEMO_WABA,
        "display_phone_number": DEMO_PHONE,
        "access_token": SANDBOX_TOKEN,
        "mode": "coexistence",
        "name": "Tienda",
    }
    w.owner.refresh_csrf("/channels/new")  # signed in now: the session's own token
    response = _post(w.owner, "/channels/manual", form)
    w.ids["channel"] = w.scalar(select(Channel.id).where(Channel.phone_number_id == DEMO_NUMBER))
    _people_and_data(w)
    return response


def _people_and_data(w: World) -> None:
    """Members, a token, contacts, a conversation with an open window, an approved
    template, and a failed webhook: what the later steps act on."""

    def make(session: Any) -> None:
        ws = session.scalar(select(Workspace))
        channel = session.get(Channel, w.ids["channel"])
        w.ids["workspace"] = ws.id
        for key, role in [
            ("agent", "agent"),
            ("sam", "supervisor"),
            ("pat", "agent"),
            ("tina", "agent"),
            ("rita", "agent"),
        ]:
            user = make_user(session, ws, role=role, email=f"{key}@example.com")
            w.ids[key] = user.id
        tina = session.get(User, w.ids["tina"])
        tina.totp_secret_encrypted = secret_box(w.settings).encrypt(pyotp.random_base32())
        tina.totp_enabled = True
        w.ids["token"] = make_token(session, ws)
        for key in ("ana", "hold", "erase", "hold2", "erase2", "erase3", "customer"):
            w.ids[key] = make_contact(session, ws, name=key.title()).id
        for key in ("merge_keep", "merge_gone", "api_keep", "api_gone"):
            w.ids[key] = make_contact(session, ws, name=key.title()).id
        customer = session.get(Contact, w.ids["customer"])
        conversation = make_conversation(session, channel, customer)
        conversation.last_inbound_at = utcnow() - dt.timedelta(minutes=5)
        conversation.window_expires_at = utcnow() + dt.timedelta(hours=23)
        w.ids["conversation"] = conversation.id
        inbound = make_message(session, conversation, timestamp=utcnow(), wamid="wamid.AUDIT1")
        w.ids["inbound"] = inbound.id
        for n in (1, 2):
            event = WebhookEvent(dedupe_key=b"audit-event-000%d" % n, body=b"{", state="failed")
            session.add(event)
            session.flush()
            w.ids[f"event{n}"] = event.id
        change = WebhookChange(
            event_id=w.ids["event2"],
            waba_id=DEMO_WABA,
            phone_number_id=DEMO_NUMBER,
            field="messages",
            value={},
            state="failed",
            error="test",
        )
        session.add(change)
        session.flush()
        w.ids["change"] = change.id

    w.write(make)
    _approved_template(w)
    w.api_client = TestClient(
        w.app, headers={"Authorization": f"Bearer {w.ids['token']}"}, base_url="http://t/api/v1"
    )


def _approved_template(w: World) -> int:
    """An approved template of the demo number's account (a sync with Meta removes it,
    as Meta does not know it: it is put back where a step needs it)."""

    def ensure(session: Any) -> int:
        template = session.scalar(
            select(MessageTemplate).where(MessageTemplate.name == "audit_hola")
        )
        if template is None:
            template = MessageTemplate(
                workspace_id=w.ids["workspace"],
                waba_id=DEMO_WABA,
                name="audit_hola",
                language="es",
                category="UTILITY",
                status="APPROVED",
                meta_id="77001",
                components=[{"type": "BODY", "text": "Hola, gracias por escribir."}],
            )
            session.add(template)
            session.flush()
        return int(template.id)

    result: int = w.write(ensure)
    return result


# Sign-in and one's own account.


def _login(w: World) -> httpx.Response:
    web = w.web()
    web.refresh_csrf("/login")
    return _post(web, "/login", {"email": "agent@example.com", "password": PASSWORD})


def _profile(w: World) -> httpx.Response:
    web = w.member("agent@example.com")
    form = {"name": "Agent Smith", "language": "en", "timezone": "UTC", "availability": "online"}
    return _post(web, "/settings/profile", form)


def _password(w: World) -> httpx.Response:
    web = w.member("pat@example.com")
    form = {
        "current_password": PASSWORD,
        "new_password": PASSWORD,
        "new_password_again": PASSWORD,
    }
    return _post(web, "/settings/profile/password", form)


def _2fa_confirm(w: World) -> httpx.Response:
    web = w.member("sam@example.com")
    w.ids["sam_web"] = web
    _ok(_post(web, "/settings/profile/2fa/start"))
    secret = w.scalar(select(User.totp_secret_encrypted).where(User.id == w.ids["sam"]))
    w.ids["sam_secret"] = secret_box(w.settings).decrypt(secret)
    code = previous_code(w.ids["sam_secret"])  # the sign-in after it uses the current one
    response = _post(web, "/settings/profile/2fa/confirm", {"code": code})
    w.ids["sam_recovery"] = re.findall(r"\b[0-9a-f]{8}-[0-9a-f]{8}\b", response.text)
    return response


def _logout(w: World) -> httpx.Response:
    return _post(w.ids["sam_web"], "/logout")


def _login_code(w: World) -> httpx.Response:
    web = w.web()
    web.refresh_csrf("/login")
    form = {"email": "sam@example.com", "password": PASSWORD}
    _ok(web.post("/login", form, follow_redirects=True))  # to the code page and its token
    w.ids["sam_web"] = web
    code = pyotp.TOTP(w.ids["sam_secret"]).now()
    return _post(web, "/login/code", {"code": code})


def _2fa_disable(w: World) -> httpx.Response:
    code = w.ids["sam_recovery"][0]
    w.ids["sam_web"].refresh_csrf("/settings/profile")  # the session after the code
    return _post(w.ids["sam_web"], "/settings/profile/2fa/disable", {"code": code})


def _forgot(w: World) -> httpx.Response:
    web = w.web()
    web.refresh_csrf("/forgot-password")
    return _post(web, "/forgot-password", {"email": "rita@example.com"})


def _reset(w: World) -> httpx.Response:
    issued = w.write(lambda s: do_request_reset(s, email="rita@example.com", ip=None))
    web = w.web()
    web.refresh_csrf(f"/reset/{issued[1]}")
    return _post(web, f"/reset/{issued[1]}", {"password": PASSWORD})


def _accept_invitation(w: World) -> httpx.Response:
    def invite(session: Any) -> str:
        owner = session.scalar(select(User).where(User.email == "owner@example.com"))
        return do_invite(
            session,
            workspace_id=w.ids["workspace"],
            email="joiner@example.com",
            role=Role.AGENT,
            invited_by=owner,
            actor="test",
            ip=None,
        )

    token = w.write(invite)
    web = w.web()
    web.refresh_csrf(f"/invite/{token}")
    return _post(web, f"/invite/{token}", {"name": "Joiner", "password": PASSWORD})


# Administration.


def _invite(w: World) -> httpx.Response:
    form = {"email": "new@example.com", "role": "agent"}
    return _post(w.owner, "/settings/users/invite", form)


def _invitation(w: World) -> int:
    link: int = w.scalar(
        select(AuthLink.id)
        .where(AuthLink.email == "new@example.com", AuthLink.used_at.is_(None))
        .order_by(AuthLink.id.desc())
        .limit(1)
    )
    return link


def _user(w: World, key: str, what: str, data: dict[str, Any] | None = None) -> httpx.Response:
    return _post(w.owner, f"/settings/users/{w.ids[key]}/{what}", data)


def _team_create(w: World) -> httpx.Response:
    response = _post(w.owner, "/settings/teams", {"name": "Ventas"})
    w.ids["team"] = w.scalar(select(Team.id).where(Team.name == "Ventas"))
    return response


def _api_team_routing(w: World) -> httpx.Response:
    def add(session: Any) -> int:
        team = Team(workspace_id=w.ids["workspace"], name="Soporte API")
        session.add(team)
        session.flush()
        return int(team.id)

    w.ids["api_team"] = w.write(add)
    body = {"strategy": "least_busy", "capacity": 4}
    return w.api.put(f"/teams/{w.ids['api_team']}/routing", json=body)


def _token_create(w: World) -> httpx.Response:
    response = _post(w.owner, "/settings/tokens", {"name": "Zapier"})
    w.ids["new_token"] = w.scalar(select(TokenRow.id).where(TokenRow.name == "Zapier"))
    return response


# The inbox.


def _send_media(w: World) -> httpx.Response:
    path = f"{_conversation(w)}/send-media"
    w.owner.get(_conversation(w))
    assert w.owner.csrf
    return w.owner.http.post(
        path,
        data={"caption": "", "key": "audit-media"},
        files={"file": ("foto.png", PNG, "image/png")},
        headers={**SCRIPT, "x-csrf-token": w.owner.csrf, "accept": "text/html"},
    )


def _send_template(w: World) -> httpx.Response:
    data = {"template_id": _approved_template(w), "key": "audit-template"}
    return _inbox(w, f"{_conversation(w)}/send-template", data)


def _snippet_delete(w: World) -> httpx.Response:
    snippet = w.scalar(select(Snippet.id).where(Snippet.shortcut == "horario"))
    return _post(w.owner, f"/inbox/snippets/{snippet}/delete")


# Contacts.


def _segment_id(w: World, name: str) -> int:
    found = w.scalar(select(Segment.id).where(Segment.name == name))
    assert found is not None, f"no segment {name}"
    return int(found)


def _new_contact(w: World) -> httpx.Response:
    form = {"phone": "+52 55 1234 0001", "name": "Nueva", "tags": "vip"}
    return _post(w.owner, "/contacts/new", form)


def _import(w: World) -> httpx.Response:
    w.owner.get("/contacts/import")
    assert w.owner.csrf
    csv = "phone,name\n+5215512340002,Importada\n+5215512340003,Otra\n"
    return w.owner.http.post(
        "/contacts/import",
        data={"csrf_token": w.owner.csrf},
        files={"file": ("contactos.csv", csv.encode(), "text/csv")},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )


def _phone(w: World, key: str) -> str:
    phone: str = w.scalar(select(Contact.phone_e164).where(Contact.id == w.ids[key]))
    return phone


# Numbers, templates, broadcasts.


def _finish_web(w: World) -> httpx.Response:
    signup = w.sandbox_signup("15550100402")
    form = {
        "method": "new_number",
        "code": signup["code"],
        "waba_id": signup["session_info"]["data"]["waba_id"],
        "phone_number_id": signup["session_info"]["data"]["phone_number_id"],
    }
    return _post(w.owner, "/channels/onboard/finish", form)


def _finish_api(w: World) -> httpx.Response:
    signup = w.sandbox_signup("15550100404")
    body = {
        "method": "new_number",
        "code": signup["code"],
        "waba_id": signup["session_info"]["data"]["waba_id"],
        "phone_number_id": signup["session_info"]["data"]["phone_number_id"],
    }
    return w.api.post("/channels/onboardings/finish", json=body)


TEMPLATE_FORM = {
    "name": "audit_pedido",
    "category": "UTILITY",
    "language": "es",
    "parameter_format": "positional",
    "header_format": "",
    "body_text": "Hola {{1}}, tu pedido ya salió.",
    "body_samples": "Ana",
    "footer_text": "",
    "buttons": "",
    "waba_id": DEMO_WABA,
}


def _template_delete(w: World) -> httpx.Response:
    template = w.scalar(select(MessageTemplate.id).where(MessageTemplate.name == "audit_pedido"))
    return _post(w.owner, f"/templates/{template}/delete")


def _broadcast_web(w: World) -> httpx.Response:
    _approved_template(w)
    form = {
        "name": "Aviso",
        "template": "audit_hola|es",
        "audience_kind": "contacts",
        "contact_ids": str(w.ids["customer"]),
        "channel_id": str(w.ids["channel"]),
    }
    response = _post(w.owner, "/broadcasts/new", form)
    w.ids["broadcast_web"] = int(response.headers.get("location", "/0").rsplit("/", 1)[1])
    return response


def _broadcast_api(w: World) -> httpx.Response:
    _approved_template(w)
    body = {
        "channel_id": w.ids["channel"],
        "template": {"name": "audit_hola", "language": "es"},
        "audience": {"kind": "contacts", "contact_ids": [w.ids["ana"]]},
    }
    response = w.api.post("/broadcasts", json=body)
    w.ids["broadcast_api"] = response.json().get("id")
    return response


def _fail_broadcast(w: World, key: str) -> None:
    """Its sends failed at Meta (set directly: no outbox worker runs in this walk)."""
    sent = select(BroadcastRecipient.message_id).where(
        BroadcastRecipient.broadcast_id == w.ids[key]
    )
    w.write(
        lambda s: s.execute(update(Message).where(Message.id.in_(sent)).values(status="failed"))
    )


def _retry_web(w: World) -> httpx.Response:
    _fail_broadcast(w, "broadcast_web")
    return _post(w.owner, f"/broadcasts/{w.ids['broadcast_web']}/retry-failed")


def _retry_api(w: World) -> httpx.Response:
    _fail_broadcast(w, "broadcast_api")
    return w.api.post(f"/broadcasts/{w.ids['broadcast_api']}/retry-failed")


# The REST API.


def _api_send(w: World) -> httpx.Response:
    body = {"conversation_id": w.ids["conversation"], "type": "text", "text": {"body": "Hola"}}
    response = w.api.post("/messages", json=body)
    w.ids["api_message"] = response.json().get("id")
    return response


def _api_resend(w: World) -> httpx.Response:
    def fail(session: Any) -> int:
        item = session.scalar(
            select(OutboxItem).where(OutboxItem.message_id != w.ids["api_message"]).limit(1)
        )
        item.state = "failed"
        message = session.get(Message, item.message_id)
        message.status = "failed"
        return int(item.id)

    return w.api.post(f"/outbox/{w.write(fail)}/resend")


def _api_contact(w: World) -> httpx.Response:
    response = w.api.post("/contacts", json={"phone": "+5215512340009", "name": "Beto"})
    w.ids["beto"] = response.json().get("id")
    return response


def _api_channel(w: World) -> httpx.Response:
    # A number the sandbox knows, so later calls to Meta for this workspace's accounts work.
    signup = w.sandbox_signup("15550100405")
    body = {
        "phone_number_id": signup["phone_number_id"],
        "waba_id": signup["waba_id"],
        "display_phone_number": "+1 555 010 0405",
        "access_token": SANDBOX_TOKEN,
    }
    return w.api.post("/channels", json=body)


def _api_template(w: World) -> httpx.Response:
    body = {
        "name": "audit_borrador",
        "category": "UTILITY",
        "language": "es",
        "components": [{"type": "BODY", "text": "Hola, tu cita está confirmada."}],
        "waba_id": DEMO_WABA,
        "submit": False,
    }
    response = w.api.post("/templates", json=body)
    w.ids["draft"] = response.json().get("id")
    return response


KB_FORM = {
    "language": "es",
    "phrasings": "¿A qué hora abren?",
    "answer": "A las 8.",
    "enabled": "yes",
}


def _kb_entry_web(w: World) -> httpx.Response:
    response = _post(w.owner, "/bot/entries/new", KB_FORM)
    w.ids["kb_web"] = w.scalar(select(func.max(KbEntry.id)))
    return response


def _kb_entry_api(w: World) -> httpx.Response:
    response = w.api.post("/kb/entries", json={"phrasings": ["¿Hacen envíos?"], "answer": "Sí."})
    w.ids["kb_api"] = response.json().get("id")
    return response


def _steps() -> list[Step]:
    C = "/inbox/c/{conversation_id}"
    K = "/contacts/{contact_id:int}"
    U = "/settings/users/{user_id}"
    B = "POST /broadcasts/{broadcast_id}/{action}"
    A = "/api/v1"
    a = audit.Action
    conv = _conversation

    def step(route: str, action: str | tuple[str, ...], call: Callable[[World], Any]) -> Step:
        actions = (action,) if isinstance(action, str) else action
        return Step(route, actions, call)

    return [
        step("POST /setup", a.WORKSPACE_CREATED, _setup),
        step("POST /channels/manual", a.CHANNEL_CONNECTED, _connect_demo_number),
        # sign-in and one's own account
        step("POST /login", a.LOGIN, _login),
        step("POST /settings/profile", a.PROFILE_CHANGED, _profile),
        step("POST /settings/profile/password", a.PASSWORD_CHANGED, _password),
        step("POST /settings/profile/2fa/confirm", a.MFA_ENABLED, _2fa_confirm),
        step("POST /logout", a.LOGOUT, _logout),
        step("POST /login/code", a.LOGIN, _login_code),
        step("POST /settings/profile/2fa/disable", a.MFA_DISABLED, _2fa_disable),
        step("POST /forgot-password", a.PASSWORD_RESET_REQUESTED, _forgot),
        step("POST /reset/{token}", a.PASSWORD_RESET, _reset),
        step("POST /invite/{token}", a.INVITATION_ACCEPTED, _accept_invitation),
        # administration
        step("POST /settings/users/invite", a.INVITATION_SENT, _invite),
        step(
            "POST /settings/invitations/{link_id}/resend",
            a.INVITATION_SENT,
            lambda w: _post(w.owner, f"/settings/invitations/{_invitation(w)}/resend"),
        ),
        step(
            "POST /settings/invitations/{link_id}/revoke",
            a.INVITATION_REVOKED,
            lambda w: _post(w.owner, f"/settings/invitations/{_invitation(w)}/revoke"),
        ),
        step(
            f"POST {U}/role",
            a.ROLE_CHANGED,
            lambda w: _user(w, "pat", "role", {"role": "supervisor"}),
        ),
        step(
            f"POST {U}/permissions",
            a.PERMISSIONS_CHANGED,
            lambda w: _user(w, "pat", "permissions", {"scope": "team"}),
        ),
        step(f"POST {U}/deactivate", a.USER_DEACTIVATED, lambda w: _user(w, "pat", "deactivate")),
        step(f"POST {U}/reactivate", a.USER_REACTIVATED, lambda w: _user(w, "pat", "reactivate")),
        step(f"POST {U}/reset-2fa", a.MFA_RESET, lambda w: _user(w, "tina", "reset-2fa")),
        step(
            f"POST {U}/reset-password",
            a.PASSWORD_RESET_ISSUED,
            lambda w: _user(w, "rita", "reset-password"),
        ),
        step("POST /settings/teams", a.TEAM_CREATED, _team_create),
        step(
            "POST /settings/teams/{team_id}/members",
            a.TEAM_MEMBERS_CHANGED,
            lambda w: _post(
                w.owner, f"/settings/teams/{w.ids['team']}/members", {"user_ids": [w.ids["agent"]]}
            ),
        ),
        step(
            "POST /settings/teams/{team_id}/routing",
            a.TEAM_ROUTING_CHANGED,
            lambda w: _post(
                w.owner,
                f"/settings/teams/{w.ids['team']}/routing",
                {"strategy": "round_robin", "capacity": "5"},
            ),
        ),
        step(
            "POST /channels/{channel_id}/routing",
            a.CHANNEL_SETTINGS_CHANGED,
            lambda w: _post(
                w.owner, f"/channels/{w.ids['channel']}/routing", {"team_id": w.ids["team"]}
            ),
        ),
        step(
            "POST /settings/availability",
            a.SETTINGS_CHANGED,
            lambda w: _post(w.owner, "/settings/availability", {"away_after_minutes": "15"}),
        ),
        step(
            "POST /settings/teams/{team_id}/delete",
            a.TEAM_DELETED,
            lambda w: _post(w.owner, f"/settings/teams/{w.ids['team']}/delete"),
        ),
        step(
            "POST /settings/security",
            a.SETTINGS_CHANGED,
            lambda w: _post(
                w.owner, "/settings/security", {"require_2fa": "none", "retention_days": "400"}
            ),
        ),
        step("POST /settings/tokens", a.TOKEN_CREATED, _token_create),
        step(
            "POST /settings/tokens/{token_id}/revoke",
            a.TOKEN_REVOKED,
            lambda w: _post(w.owner, f"/settings/tokens/{w.ids['new_token']}/revoke"),
        ),
        # the inbox
        step(
            f"POST {C}/send",
            a.MESSAGE_SENT,
            lambda w: _inbox(w, f"{conv(w)}/send", {"body": "Hola", "key": "audit-text"}),
        ),
        step(f"POST {C}/send-template", a.MESSAGE_SENT, _send_template),
        step(f"POST {C}/send-media", a.MESSAGE_SENT, _send_media),
        step(
            f"POST {C}/send-question",
            a.MESSAGE_SENT,
            lambda w: _inbox(
                w,
                f"{conv(w)}/send-question",
                {
                    "body": "¿Cuándo pasas?",
                    "option": ["Hoy", "Mañana"],
                    "description": ["", ""],
                    "style": "buttons",
                    "key": "audit-question",
                },
            ),
        ),
        step(
            f"POST {C}/react",
            a.MESSAGE_SENT,
            lambda w: _inbox(
                w, f"{conv(w)}/react", {"message_id": w.ids["inbound"], "emoji": "👍", "key": "r"}
            ),
        ),
        step(
            f"POST {C}/assign",
            a.CONVERSATION_ASSIGNED,
            lambda w: _inbox(w, f"{conv(w)}/assign", {"assignee_id": "me"}),
        ),
        step(
            f"POST {C}/labels",
            a.CONVERSATION_LABELLED,
            lambda w: _inbox(w, f"{conv(w)}/labels", {"label": "vip"}),
        ),
        step(
            f"POST {C}/labels/remove",
            a.CONVERSATION_UNLABELLED,
            lambda w: _inbox(w, f"{conv(w)}/labels/remove", {"label": "vip"}),
        ),
        step(
            f"POST {C}/note",
            a.NOTE_ADDED,
            lambda w: _inbox(w, f"{conv(w)}/note", {"body": "Llamar mañana"}),
        ),
        step(
            f"POST {C}/bot",
            a.BOT_PAUSED,
            lambda w: _inbox(w, f"{conv(w)}/bot", {"paused": "1"}),
        ),
        step(
            f"POST {C}/bot",
            a.BOT_RESUMED,
            lambda w: _inbox(w, f"{conv(w)}/bot", {"paused": "0"}),
        ),
        step(
            f"POST {C}/contact",
            a.CONTACT_UPDATED,
            lambda w: _inbox(w, f"{conv(w)}/contact", {"new_key": "pedido", "new_value": "A-17"}),
        ),
        step(f"POST {C}/workflows/run", a.WORKFLOW_RUN_STARTED, _run_workflow_from_inbox),
        step(
            f"POST {C}/snooze",
            a.CONVERSATION_SNOOZED,
            lambda w: _inbox(w, f"{conv(w)}/snooze", {"preset": "1h"}),
        ),
        step(
            f"POST {C}/reopen",
            a.CONVERSATION_REOPENED,
            lambda w: _inbox(w, f"{conv(w)}/reopen", {}),
        ),
        step(f"POST {C}/close", a.CONVERSATION_CLOSED, lambda w: _inbox(w, f"{conv(w)}/close", {})),
        step(
            "POST /inbox/snippets",
            a.SNIPPET_CREATED,
            lambda w: _post(w.owner, "/inbox/snippets", {"shortcut": "horario", "body": "9 a 6"}),
        ),
        step("POST /inbox/snippets/{snippet_id}/delete", a.SNIPPET_DELETED, _snippet_delete),
        # contacts
        step("POST /contacts/new", a.CONTACT_CREATED, _new_contact),
        step("POST /contacts/import", a.CONTACTS_IMPORTED, _import),
        step(
            "POST /contacts/segments/new",
            a.SEGMENT_SAVED,
            lambda w: _post(w.owner, "/contacts/segments/new", {"name": "Web", "tags_any": "vip"}),
        ),
        step(
            "POST /contacts/segments/{segment_id:int}/edit",
            a.SEGMENT_SAVED,
            lambda w: _post(
                w.owner,
                f"/contacts/segments/{_segment_id(w, 'Web')}/edit",
                {"name": "Web 2", "consent": "opt_in"},
            ),
        ),
        step(
            "POST /contacts/segments/{segment_id:int}/delete",
            a.SEGMENT_DELETED,
            lambda w: _post(w.owner, f"/contacts/segments/{_segment_id(w, 'Web 2')}/delete"),
        ),
        step(
            f"POST {K}/name",
            a.CONTACT_UPDATED,
            lambda w: _post(w.owner, f"{_contact(w)}/name", {"name": "Ana María"}),
        ),
        step(
            f"POST {K}/fields",
            a.CONTACT_UPDATED,
            lambda w: _post(w.owner, f"{_contact(w)}/fields", {"key": "ciudad", "value": "CDMX"}),
        ),
        step(
            f"POST {K}/fields/remove",
            a.CONTACT_UPDATED,
            lambda w: _post(w.owner, f"{_contact(w)}/fields/remove", {"key": "ciudad"}),
        ),
        step(
            f"POST {K}/tags",
            a.CONTACT_TAGS_CHANGED,
            lambda w: _post(w.owner, f"{_contact(w)}/tags", {"tag": "vip"}),
        ),
        step(
            f"POST {K}/tags/remove",
            a.CONTACT_TAGS_CHANGED,
            lambda w: _post(w.owner, f"{_contact(w)}/tags/remove", {"tag": "vip"}),
        ),
        step(
            f"POST {K}/consent",
            a.CONSENT_RECORDED,
            lambda w: _post(w.owner, f"{_contact(w)}/consent", {"kind": "opt_in"}),
        ),
        step(
            f"POST {K}/hold",
            a.LEGAL_HOLD_CHANGED,
            lambda w: _post(w.owner, f"{_contact(w, 'hold')}/hold", {"hold": "on"}),
        ),
        step(
            f"POST {K}/export",
            a.CONTACT_EXPORTED,
            lambda w: _post(w.owner, f"{_contact(w)}/export"),
        ),
        step(
            f"POST {K}/merge",
            "contact.merged",
            lambda w: _post(
                w.owner, f"{_contact(w, 'merge_keep')}/merge", {"other": str(w.ids["merge_gone"])}
            ),
        ),
        step(
            "POST /contacts/{contact_id:int}/merges/{merge_id:int}/split",
            "contact.split",
            lambda w: _post(
                w.owner,
                f"{_contact(w, 'merge_keep')}/merges/{_merge_id(w, 'merge_keep')}/split",
            ),
        ),
        step(
            f"POST {K}/erase",
            a.CONTACT_ERASED,
            lambda w: _post(w.owner, f"{_contact(w, 'erase')}/erase", {"confirm": "yes"}),
        ),
        step(
            "POST /settings/privacy/hold",
            a.LEGAL_HOLD_CHANGED,
            lambda w: _post(w.owner, "/settings/privacy/hold", {"phone": _phone(w, "hold2")}),
        ),
        step(
            "POST /settings/privacy/export",
            a.CONTACT_EXPORTED,
            lambda w: _post(w.owner, "/settings/privacy/export", {"phone": _phone(w, "ana")}),
        ),
        step(
            "POST /settings/workspace/export",
            "workspace.exported",
            lambda w: _post(w.owner, "/settings/workspace/export"),
        ),
        step(
            "POST /settings/privacy/erase",
            a.CONTACT_ERASED,
            lambda w: _post(
                w.owner, "/settings/privacy/erase", {"phone": _phone(w, "erase2"), "confirm": "yes"}
            ),
        ),
        # numbers
        step(
            "POST /channels/{channel_id}/settings",
            a.CHANNEL_SETTINGS_CHANGED,
            lambda w: _post(
                w.owner,
                f"/channels/{w.ids['channel']}/settings",
                {"pause_bot_on_owner_reply": "yes"},
            ),
        ),
        step(
            "POST /channels/{channel_id}/business-hours",
            a.CHANNEL_SETTINGS_CHANGED,
            lambda w: _post(
                w.owner,
                f"/channels/{w.ids['channel']}/business-hours",
                {"time_zone": "UTC", "mon_start_0": "09:00", "mon_end_0": "17:00"},
            ),
        ),
        step(
            "POST /channels/{channel_id}/survey",
            a.CHANNEL_SETTINGS_CHANGED,
            lambda w: _post(w.owner, f"/channels/{w.ids['channel']}/survey", {"mode": "buttons"}),
        ),
        step(
            "POST /channels/{channel_id}/sync/{sync_type}",
            a.CHANNEL_SYNC_REQUESTED,
            lambda w: _post(w.owner, f"/channels/{w.ids['channel']}/sync/smb_app_state_sync"),
        ),
        step(
            "POST /channels/onboard",
            a.CHANNEL_ONBOARDING_STARTED,
            lambda w: _post(
                w.owner, "/channels/onboard", {"method": "new_number", "phone": "15550100401"}
            ),
        ),
        step(
            "POST /channels/onboard/finish",
            (a.CHANNEL_ONBOARDING_STARTED, a.CHANNEL_CONNECTED),
            _finish_web,
        ),
        # templates and broadcasts
        step(
            "POST /templates/new",
            a.TEMPLATE_CREATED,
            lambda w: _post(w.owner, "/templates/new", TEMPLATE_FORM),
        ),
        step(
            "POST /templates/sync", a.TEMPLATES_SYNCED, lambda w: _post(w.owner, "/templates/sync")
        ),
        step("POST /templates/{template_id}/delete", a.TEMPLATE_DELETED, _template_delete),
        step("POST /broadcasts/new", a.BROADCAST_CREATED, _broadcast_web),
        step(
            B,
            a.BROADCAST_PAUSED,
            lambda w: _post(w.owner, f"/broadcasts/{w.ids['broadcast_web']}/pause"),
        ),
        step(
            B,
            a.BROADCAST_RESUMED,
            lambda w: _post(w.owner, f"/broadcasts/{w.ids['broadcast_web']}/resume"),
        ),
        step(B, a.BROADCAST_RETRIED, _retry_web),
        step(
            B,
            a.BROADCAST_CANCELLED,
            lambda w: _post(w.owner, f"/broadcasts/{w.ids['broadcast_web']}/cancel"),
        ),
        # the knowledge-base bot
        step(
            "POST /bot/settings",
            a.BOT_SETTINGS_CHANGED,
            lambda w: _post(w.owner, "/bot/settings", {"enabled": "yes", "threshold": "0.6"}),
        ),
        step("POST /bot/entries/new", a.KB_ENTRY_CREATED, _kb_entry_web),
        step(
            "POST /bot/entries/{entry_id}",
            a.KB_ENTRY_UPDATED,
            lambda w: _post(w.owner, f"/bot/entries/{w.ids['kb_web']}", KB_FORM),
        ),
        step(
            "POST /bot/entries/{entry_id}/delete",
            a.KB_ENTRY_DELETED,
            lambda w: _post(w.owner, f"/bot/entries/{w.ids['kb_web']}/delete"),
        ),
        # the REST API, with a token
        step(f"POST {A}/messages", a.MESSAGE_SENT, _api_send),
        step(
            f"POST {A}/messages/{{message_id}}/cancel",
            a.MESSAGE_CANCELLED,
            lambda w: w.api.post(f"/messages/{w.ids['api_message']}/cancel"),
        ),
        step(f"POST {A}/outbox/{{item_id}}/resend", a.MESSAGE_RESENT, _api_resend),
        step(f"POST {A}/contacts", a.CONTACT_CREATED, _api_contact),
        step(
            f"PATCH {A}/contacts/{{contact_id}}",
            a.CONTACT_UPDATED,
            lambda w: w.api.patch(f"/contacts/{w.ids['beto']}", json={"name": "Beto B."}),
        ),
        step(
            f"POST {A}/contacts/{{contact_id}}/tags",
            a.CONTACT_TAGS_CHANGED,
            lambda w: w.api.post(f"/contacts/{w.ids['beto']}/tags", json={"tags": ["vip"]}),
        ),
        step(
            f"PUT {A}/contacts/{{contact_id}}/tags",
            a.CONTACT_TAGS_CHANGED,
            lambda w: w.api.put(f"/contacts/{w.ids['beto']}/tags", json={"tags": ["nuevo"]}),
        ),
        step(
            f"DELETE {A}/contacts/{{contact_id}}/tags/{{tag}}",
            a.CONTACT_TAGS_CHANGED,
            lambda w: w.api.delete(f"/contacts/{w.ids['beto']}/tags/nuevo"),
        ),
        step(
            f"POST {A}/contacts/{{contact_id}}/consent",
            a.CONSENT_RECORDED,
            lambda w: w.api.post(f"/contacts/{w.ids['beto']}/consent", json={"kind": "opt_out"}),
        ),
        step(
            f"PUT {A}/contacts/{{contact_id}}/legal-hold",
            a.LEGAL_HOLD_CHANGED,
            lambda w: w.api.put(f"/contacts/{w.ids['beto']}/legal-hold", json={"legal_hold": True}),
        ),
        step(
            f"POST {A}/contacts/{{contact_id}}/merge",
            "contact.merged",
            lambda w: w.api.post(
                f"/contacts/{w.ids['api_keep']}/merge",
                json={"other_contact_id": w.ids["api_gone"]},
            ),
        ),
        step(
            f"POST {A}/contacts/{{contact_id}}/merges/{{merge_id}}/split",
            "contact.split",
            lambda w: w.api.post(
                f"/contacts/{w.ids['api_keep']}/merges/{_merge_id(w, 'api_keep')}/split"
            ),
        ),
        step(
            f"DELETE {A}/contacts/{{contact_id}}",
            a.CONTACT_ERASED,
            lambda w: w.api.delete(f"/contacts/{w.ids['erase3']}"),
        ),
        step(f"POST {A}/channels", a.CHANNEL_CONNECTED, _api_channel),
        step(
            f"POST {A}/channels/onboardings",
            a.CHANNEL_ONBOARDING_STARTED,
            lambda w: w.api.post(
                "/channels/onboardings", json={"method": "new_number", "phone": "15550100403"}
            ),
        ),
        step(
            f"POST {A}/channels/onboardings/finish",
            (a.CHANNEL_ONBOARDING_STARTED, a.CHANNEL_CONNECTED),
            _finish_api,
        ),
        step(
            f"POST {A}/channels/{{channel_id}}/sync-requests",
            a.CHANNEL_SYNC_REQUESTED,
            # Meta may refuse it (502): the request is recorded, and audited, either way.
            lambda w: w.api.post(
                f"/channels/{w.ids['channel']}/sync-requests", json={"sync_type": "history"}
            ),
        ),
        step(
            f"PUT {A}/channels/{{channel_id}}/messaging-limit",
            a.MESSAGING_LIMIT_SET,
            lambda w: w.api.put(
                f"/channels/{w.ids['channel']}/messaging-limit", json={"tier": "1000"}
            ),
        ),
        step(f"PUT {A}/teams/{{team_id}}/routing", a.TEAM_ROUTING_CHANGED, _api_team_routing),
        step(
            f"PUT {A}/channels/{{channel_id}}/routing",
            a.CHANNEL_SETTINGS_CHANGED,
            lambda w: w.api.put(
                f"/channels/{w.ids['channel']}/routing",
                json={"default_team_id": w.ids["api_team"]},
            ),
        ),
        step(
            f"PUT {A}/channels/{{channel_id}}/business-hours",
            a.CHANNEL_SETTINGS_CHANGED,
            lambda w: w.api.put(
                f"/channels/{w.ids['channel']}/business-hours",
                json={"time_zone": "UTC", "week": {"mon": [{"start": "09:00", "end": "17:00"}]}},
            ),
        ),
        step(f"POST {A}/templates", a.TEMPLATE_CREATED, _api_template),
        step(
            f"POST {A}/templates/{{template_id}}/submit",
            a.TEMPLATE_SUBMITTED,
            lambda w: w.api.post(f"/templates/{w.ids['draft']}/submit"),
        ),
        step(
            f"POST {A}/templates/sync", a.TEMPLATES_SYNCED, lambda w: w.api.post("/templates/sync")
        ),
        step(
            f"DELETE {A}/templates/{{template_id}}",
            a.TEMPLATE_DELETED,
            lambda w: w.api.delete(f"/templates/{w.ids['draft']}"),
        ),
        step(f"POST {A}/broadcasts", a.BROADCAST_CREATED, _broadcast_api),
        step(
            f"POST {A}/broadcasts/{{broadcast_id}}/pause",
            a.BROADCAST_PAUSED,
            lambda w: w.api.post(f"/broadcasts/{w.ids['broadcast_api']}/pause"),
        ),
        step(
            f"POST {A}/broadcasts/{{broadcast_id}}/resume",
            a.BROADCAST_RESUMED,
            lambda w: w.api.post(f"/broadcasts/{w.ids['broadcast_api']}/resume"),
        ),
        step(f"POST {A}/broadcasts/{{broadcast_id}}/retry-failed", a.BROADCAST_RETRIED, _retry_api),
        step(
            f"POST {A}/broadcasts/{{broadcast_id}}/cancel",
            a.BROADCAST_CANCELLED,
            lambda w: w.api.post(f"/broadcasts/{w.ids['broadcast_api']}/cancel"),
        ),
        step(
            f"POST {A}/segments",
            a.SEGMENT_SAVED,
            lambda w: w.api.post(
                "/segments", json={"name": "VIP", "filter": {"tags_any": ["vip"]}}
            ),
        ),
        step(
            f"PATCH {A}/segments/{{segment_id}}",
            a.SEGMENT_SAVED,
            lambda w: w.api.patch(f"/segments/{_segment_id(w, 'VIP')}", json={"name": "VIP 2"}),
        ),
        step(
            f"DELETE {A}/segments/{{segment_id}}",
            a.SEGMENT_DELETED,
            lambda w: w.api.delete(f"/segments/{_segment_id(w, 'VIP 2')}"),
        ),
        step(
            f"POST {A}/events/{{event_id}}/retry",
            a.WEBHOOK_RETRIED,
            lambda w: w.api.post(f"/events/{w.ids['event1']}/retry"),
        ),
        step(
            f"POST {A}/events/changes/{{change_id}}/retry",
            a.WEBHOOK_RETRIED,
            lambda w: w.api.post(f"/events/changes/{w.ids['change']}/retry"),
        ),
        step(f"POST {A}/kb/entries", a.KB_ENTRY_CREATED, _kb_entry_api),
        step(
            f"PATCH {A}/kb/entries/{{entry_id}}",
            a.KB_ENTRY_UPDATED,
            lambda w: w.api.patch(f"/kb/entries/{w.ids['kb_api']}", json={"enabled": False}),
        ),
        step(
            f"DELETE {A}/kb/entries/{{entry_id}}",
            a.KB_ENTRY_DELETED,
            lambda w: w.api.delete(f"/kb/entries/{w.ids['kb_api']}"),
        ),
        step(f"PUT {A}/kb/settings", a.BOT_SETTINGS_CHANGED, _kb_settings_api),
        *_workflow_api_steps(step, a),
        *_workflow_web_steps(step, a),
        *_webhook_api_steps(step, a),
        *_webhook_web_steps(step, a),
        *_chat_link_steps(step, a),
    ]


def _chat_link_steps(step: Callable[..., Step], a: type[audit.Action]) -> list[Step]:
    web = "/channels/{channel_id}/chat-links"
    api = "/api/v1/channels/{channel_id}/chat-links"

    def links(w: World) -> str:
        return f"/channels/{w.ids['channel']}/chat-links"

    def create_web(w: World) -> httpx.Response:
        response = _post(w.owner, links(w), {"name": "Cartel", "text": "Hola"})
        w.ids["chat_link_web"] = response.headers.get("location", "").split("#link-")[-1]
        return response

    def create_api(w: World) -> httpx.Response:
        response = w.api.post(links(w), json={"name": "Web", "text": "Hola"})
        w.ids["chat_link_api"] = response.json().get("id")
        return response

    return [
        step(f"POST {web}", a.CHAT_LINK_CREATED, create_web),
        step(
            f"POST {web}/{{link_id}}",
            a.CHAT_LINK_UPDATED,
            lambda w: _post(
                w.owner, f"{links(w)}/{w.ids['chat_link_web']}", {"name": "Vitrina", "text": ""}
            ),
        ),
        step(
            f"POST {web}/{{link_id}}/delete",
            a.CHAT_LINK_DELETED,
            lambda w: _post(w.owner, f"{links(w)}/{w.ids['chat_link_web']}/delete"),
        ),
        step(f"POST {api}", a.CHAT_LINK_CREATED, create_api),
        step(
            f"PATCH {api}/{{link_id}}",
            a.CHAT_LINK_UPDATED,
            lambda w: w.api.patch(f"{links(w)}/{w.ids['chat_link_api']}", json={"name": "Sitio"}),
        ),
        step(
            f"DELETE {api}/{{link_id}}",
            a.CHAT_LINK_DELETED,
            lambda w: w.api.delete(f"{links(w)}/{w.ids['chat_link_api']}"),
        ),
    ]


WORKFLOW = {
    "version": 1,
    "trigger": {"type": "api"},
    "steps": [{"id": "tag", "type": "add_tag", "tag": "audited"}],
}


def _workflow_api_steps(step: Callable[..., Step], a: type[audit.Action]) -> list[Step]:
    A = "/api/v1"
    W = f"{A}/workflows/{{workflow_id}}"

    def create(w: World) -> httpx.Response:
        response = w.api.post("/workflows", json={"name": "Audited", "definition": WORKFLOW})
        w.ids["workflow"] = response.json().get("id")
        return response

    def imported(w: World) -> httpx.Response:
        document = w.api.get(f"/workflows/{w.ids['workflow']}/export").json()
        response = w.api.post("/workflows/import", json=document)
        w.ids["workflow_copy"] = response.json().get("id")
        return response

    def start(w: World) -> httpx.Response:
        body = {"contact_id": w.ids["customer"], "variables": {"order": "A-1"}}
        response = w.api.post(f"/workflows/{w.ids['workflow']}/runs", json=body)
        w.ids["run"] = response.json().get("id")
        return response

    def retry(w: World) -> httpx.Response:
        def fail(session: Any) -> None:
            run = session.get(WorkflowRun, w.ids["run"])
            run.status, run.error = "failed", "test"

        w.write(fail)
        return w.api.post(f"/workflow-runs/{w.ids['run']}/retry")

    def put(w: World) -> httpx.Response:
        body = {"name": "Audited", "description": "changed", "definition": WORKFLOW}
        return w.api.put(f"/workflows/{w.ids['workflow']}", json=body)

    def post(path: str) -> Callable[[World], httpx.Response]:
        return lambda w: w.api.post(f"/workflows/{w.ids['workflow']}/{path}")

    return [
        step(f"POST {A}/workflows", a.WORKFLOW_CREATED, create),
        step(f"PUT {W}", a.WORKFLOW_SAVED, put),
        step(f"POST {A}/workflows/import", a.WORKFLOW_CREATED, imported),
        step(f"POST {W}/publish", a.WORKFLOW_PUBLISHED, post("publish")),
        step(f"POST {W}/enable", a.WORKFLOW_ENABLED, post("enable")),
        step(f"POST {W}/runs", a.WORKFLOW_RUN_STARTED, start),
        step(f"POST {A}/workflow-runs/{{run_id}}/retry", a.WORKFLOW_RUN_RETRIED, retry),
        step(f"POST {W}/disable", a.WORKFLOW_DISABLED, post("disable")),
        step(
            f"DELETE {W}",
            a.WORKFLOW_DELETED,
            lambda w: w.api.delete(f"/workflows/{w.ids['workflow_copy']}"),
        ),
    ]


def _webhook_api_steps(step: Callable[..., Step], a: type[audit.Action]) -> list[Step]:
    E = "/api/v1/webhooks/{endpoint_id}"

    def hook(w: World) -> str:
        return f"/webhooks/{w.ids['webhook']}"

    def create(w: World) -> httpx.Response:
        body = {"url": "https://hooks.example.com/puente", "events": ["message.created"]}
        response = w.api.post("/webhooks", json=body)
        w.ids["webhook"] = response.json().get("id")
        return response

    def test(w: World) -> httpx.Response:
        response = w.api.post(f"{hook(w)}/test")
        w.ids["webhook_delivery"] = response.json().get("id")
        return response

    return [
        step("POST /api/v1/webhooks", a.WEBHOOK_ENDPOINT_CREATED, create),
        step(
            f"PATCH {E}",
            a.WEBHOOK_ENDPOINT_UPDATED,
            lambda w: w.api.patch(hook(w), json={"description": "the shop"}),
        ),
        step(
            f"POST {E}/rotate-secret",
            a.WEBHOOK_SECRET_ROTATED,
            lambda w: w.api.post(f"{hook(w)}/rotate-secret"),
        ),
        step(f"POST {E}/test", a.WEBHOOK_TEST_SENT, test),
        step(
            f"POST {E}/deliveries/{{delivery_id}}/resend",
            a.WEBHOOK_DELIVERY_RESENT,
            lambda w: w.api.post(f"{hook(w)}/deliveries/{w.ids['webhook_delivery']}/resend"),
        ),
        step(
            f"POST {E}/resend-failed",
            a.WEBHOOK_DELIVERY_RESENT,
            lambda w: w.api.post(f"{hook(w)}/resend-failed"),
        ),
        step(f"DELETE {E}", a.WEBHOOK_ENDPOINT_DELETED, lambda w: w.api.delete(hook(w))),
    ]


def _webhook_web_steps(step: Callable[..., Step], a: type[audit.Action]) -> list[Step]:
    E = "POST /settings/webhooks/{endpoint_id}"
    form = {"url": "https://hooks.example.com/web", "events": ["contact.created"]}

    def hook(w: World, tail: str = "") -> str:
        return f"/settings/webhooks/{w.ids['webhook_web']}{tail}"

    def create(w: World) -> httpx.Response:
        response = _post(w.owner, "/settings/webhooks", form)
        found = re.search(r'action="/settings/webhooks/(\d+)/test"', response.text)
        w.ids["webhook_web"] = int(found.group(1)) if found else 0
        return response

    def resend(w: World) -> httpx.Response:
        from puente.integrations.webhooks.models import WebhookDelivery

        delivery = w.scalar(
            select(func.max(WebhookDelivery.id)).where(
                WebhookDelivery.endpoint_id == w.ids["webhook_web"]
            )
        )
        return _post(w.owner, hook(w, f"/deliveries/{delivery}/resend"))

    def post(tail: str, data: dict[str, Any] | None = None) -> Callable[[World], httpx.Response]:
        return lambda w: _post(w.owner, hook(w, tail), data)

    return [
        step("POST /settings/webhooks", a.WEBHOOK_ENDPOINT_CREATED, create),
        step(E, a.WEBHOOK_ENDPOINT_UPDATED, post("", {**form, "description": "the shop"})),
        step(f"{E}/disable", a.WEBHOOK_ENDPOINT_UPDATED, post("/disable")),
        step(f"{E}/enable", a.WEBHOOK_ENDPOINT_UPDATED, post("/enable")),
        step(f"{E}/rotate", a.WEBHOOK_SECRET_ROTATED, post("/rotate")),
        step(f"{E}/test", a.WEBHOOK_TEST_SENT, post("/test")),
        step(f"{E}/deliveries/{{delivery_id}}/resend", a.WEBHOOK_DELIVERY_RESENT, resend),
        step(f"{E}/resend-failed", a.WEBHOOK_DELIVERY_RESENT, post("/resend-failed")),
        step(f"{E}/delete", a.WEBHOOK_ENDPOINT_DELETED, post("/delete")),
    ]


WORKFLOW_FORM = {
    "name": "Web audited",
    "trigger.type": "api",
    "s0.id": "tag",
    "s0.type": "add_tag",
    "s0.tag": "audited",
}


def _workflow_web_steps(step: Callable[..., Step], a: type[audit.Action]) -> list[Step]:
    W = "POST /workflows/{workflow_id}"

    def url(w: World, tail: str = "") -> str:
        return f"/workflows/{w.ids['workflow_web']}{tail}"

    def create(w: World) -> httpx.Response:
        form = {"name": "Web audited", "trigger": "api"}
        response = _post(w.owner, "/workflows/new", form)
        w.ids["workflow_web"] = int(response.headers["location"].split("/")[2].split("?")[0])
        return response

    def imported(w: World) -> httpx.Response:
        exported = w.owner.get(url(w, "/export")).content
        files = {"file": ("w.json", exported, "application/json")}
        response = w.owner.post("/workflows/import", {}, files=files, follow_redirects=False)
        w.ids["workflow_web_copy"] = int(response.headers["location"].split("/")[2].split("?")[0])
        return response

    def test_run(w: World) -> httpx.Response:
        response = _post(w.owner, url(w, "/test"), {"contact_id": str(w.ids["customer"])})
        w.ids["run_web"] = int(response.headers["location"].rsplit("/", 1)[1])
        return response

    def retry(w: World) -> httpx.Response:
        def fail(session: Any) -> None:
            run = session.get(WorkflowRun, w.ids["run_web"])
            run.status, run.error = "failed", "test"

        w.write(fail)
        return _post(w.owner, url(w, f"/runs/{w.ids['run_web']}/retry"))

    def ready_made(w: World) -> httpx.Response:
        from puente.automation.workflows.library import LIBRARY

        return _post(w.owner, f"/workflows/library/{LIBRARY[0].key}")

    return [
        step("POST /workflows/new", a.WORKFLOW_CREATED, create),
        step(W, a.WORKFLOW_SAVED, lambda w: _post(w.owner, url(w), WORKFLOW_FORM)),
        step(
            f"{W}/publish",
            (a.WORKFLOW_SAVED, a.WORKFLOW_PUBLISHED),
            lambda w: _post(w.owner, url(w, "/publish"), WORKFLOW_FORM),
        ),
        step(
            f"{W}/enabled",
            a.WORKFLOW_ENABLED,
            lambda w: _post(w.owner, url(w, "/enabled"), {"enabled": "yes"}),
        ),
        step(f"{W}/test", a.WORKFLOW_RUN_STARTED, test_run),
        step(f"{W}/runs/{{run_id}}/retry", a.WORKFLOW_RUN_RETRIED, retry),
        step(
            f"{W}/enabled",
            a.WORKFLOW_DISABLED,
            lambda w: _post(w.owner, url(w, "/enabled"), {"enabled": "no"}),
        ),
        step("POST /workflows/import", a.WORKFLOW_CREATED, imported),
        step("POST /workflows/library/{key}", a.WORKFLOW_CREATED, ready_made),
        step(
            f"{W}/delete",
            a.WORKFLOW_DELETED,
            lambda w: _post(w.owner, f"/workflows/{w.ids['workflow_web_copy']}/delete"),
        ),
    ]


def _run_workflow_from_inbox(w: World) -> httpx.Response:
    from puente.automation.workflows.definition import parse_definition
    from puente.automation.workflows.service import do_create_workflow, do_publish, do_set_enabled
    from puente.conversations.models import Conversation

    def manual_workflow(session: Any) -> int:
        conversation = session.get(Conversation, w.ids["conversation"])
        definition = parse_definition({**WORKFLOW, "trigger": {"type": "manual"}})
        workflow = do_create_workflow(
            session, conversation.workspace_id, name="Manual", definition=definition
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, True)
        return int(workflow.id)

    workflow_id = w.write(manual_workflow)
    return _inbox(w, f"{_conversation(w)}/workflows/run", {"workflow_id": str(workflow_id)})


def _kb_settings_api(w: World) -> httpx.Response:
    settings = w.api.get("/kb/settings").json()
    return w.api.put("/kb/settings", json={**settings, "enabled": False})


def test_the_walk_covers_every_audited_route_and_action() -> None:
    walked = {(s.route, a) for s in _steps() for a in s.actions}
    expected = {(route, a) for route, actions in AUDITED.items() for a in actions}
    assert sorted(expected - walked) == [], "audited routes (and actions) the walk never calls"
    assert sorted(walked - expected) == [], "the walk expects entries the policy does not name"


@pytest.fixture
def world(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[World]:
    sandbox = live_server_factory(
        create_sandbox_app(
            SandboxConfig(
                app_secret=APP_SECRET,
                verify_token=VERIFY_TOKEN,
                access_token=SANDBOX_TOKEN,
                template_review_delay=0.05,
            )
        )
    ).start()
    wired = settings.model_copy(
        update={
            "graph_base_url": sandbox.url,
            "meta_app_id": SandboxConfig().app_id,
            "meta_app_secret": SecretStr(APP_SECRET),
            "dev_mail": True,
        }
    )
    app = create_app(wired, db, run_workers=False)
    with TestClient(app) as client:
        yield World(db, wired, app, sandbox, WebClient(client))


def test_each_state_changing_route_writes_its_audit_entry(world: World) -> None:
    problems: list[str] = []
    for s in _steps():
        before = world.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))
        response = s.call(world)
        where = f"{s.route} ({', '.join(s.actions)})"
        if response.status_code >= 400 and not s.route.endswith("/sync-requests"):
            problems.append(f"{where}: HTTP {response.status_code} {response.text[:300]}")
            continue
        with world.db.read(unscoped="test") as session:
            entries = session.execute(
                select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.id > before)
            ).all()
        for action in s.actions:
            found = [actor for name, actor in entries if name == action]
            if not found:
                seen = [name for name, _ in entries]
                problems.append(f"{where}: no {action} entry (new entries: {seen})")
            elif "system" in found:
                problems.append(f"{where}: {action} is recorded without its actor")
    assert problems == [], "\n".join(problems)
    with world.db.read(unscoped="test") as session:
        result = audit.verify(session)
    assert result.problems == [] and result.checked > 0
