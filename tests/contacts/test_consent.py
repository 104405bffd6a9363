"""Marketing consent: opt-out keywords from signed inbound webhooks (es and en), Meta's
131050, marketing templates refused to opted-out contacts, and the consent API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.config import Settings
from puente.contacts.consent import OptedOut, check_marketing_consent, do_record_consent
from puente.contacts.models import ConsentEvent, Contact, ContactConsent
from puente.contacts.optout_keywords import match_optout_keyword
from puente.conversations.models import Message
from puente.db.base import utcnow
from puente.db.session import Database
from puente.ingest.worker import run_until_idle
from puente.outbound.models import MessageTemplate
from puente.outbound.templates.service import TemplateNotSendable, check_template_send
from puente.runtime import Runtime
from tests.conftest import LiveServer
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_token,
    make_workspace,
)
from tests.ingest.helpers import (
    DISPLAY_NUMBER,
    PHONE_NUMBER_ID,
    WABA_ID,
    dumps,
    envelope,
    messages_change,
    signed,
    text_message,
)

MEXICO = "5215512345678"
USA = "16505551234"


@dataclass
class Live:
    server: LiveServer
    http: httpx.Client
    workspace_id: int
    token: str

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.server.server.config.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def inbound(self, wamid: str, text: str, sender: str) -> None:
        message = text_message(wamid, text, sender)
        message["timestamp"] = str(int(utcnow().timestamp()))
        body = dumps(envelope(messages_change([message], sender=sender)))
        r = self.http.post("/webhooks/whatsapp", content=body, headers=signed(body))
        assert r.status_code == 200
        run_until_idle(self.runtime)

    def status_failed(self, wamid: str, recipient: str, code: int) -> None:
        status = {
            "id": wamid,
            "status": "failed",
            "timestamp": str(int(utcnow().timestamp())),
            "recipient_id": recipient,
            "errors": [
                {
                    "code": code,
                    "title": "Message failed to send",
                    "message": "Message failed to send",
                    "error_data": {"details": "The user stopped marketing messages"},
                }
            ],
        }
        change = {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {
                    "display_phone_number": DISPLAY_NUMBER,
                    "phone_number_id": PHONE_NUMBER_ID,
                },
                "statuses": [status],
            },
        }
        body = dumps(envelope(change))
        r = self.http.post("/webhooks/whatsapp", content=body, headers=signed(body))
        assert r.status_code == 200
        run_until_idle(self.runtime)


@pytest.fixture
def live(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Live]:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        make_channel(session, ws, phone_number_id=PHONE_NUMBER_ID, waba_id=WABA_ID)
        token = make_token(session, ws)
        ws_id = ws.id
    server = live_server_factory(create_app(settings, db, run_workers=False)).start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield Live(server, http, ws_id, token)


def contact_by_wa_id(db: Database, wa_id: str) -> Contact:
    with db.read(unscoped="test") as session:
        contact = session.scalars(select(Contact).where(Contact.wa_id == wa_id)).one()
        session.expunge(contact)
        return contact


def consent_of(db: Database, contact_id: int) -> tuple[str | None, list[tuple[str, str]]]:
    with db.read(unscoped="test") as session:
        state = session.scalar(
            select(ContactConsent.state).where(ContactConsent.contact_id == contact_id)
        )
        events = session.execute(
            select(ConsentEvent.kind, ConsentEvent.source)
            .where(ConsentEvent.contact_id == contact_id)
            .order_by(ConsentEvent.id)
        ).all()
        return state, [(k, s) for k, s in events]


def replies_to(db: Database, contact_id: int) -> list[str]:
    with db.read(unscoped="test") as session:
        return [
            m.text or ""
            for m in session.scalars(
                select(Message)
                .where(Message.contact_id == contact_id, Message.direction == "outbound")
                .order_by(Message.id)
            )
        ]


@pytest.mark.parametrize(
    ("text", "sender", "language_word"),
    [
        ("BAJA", MEXICO, "promocionales"),
        ("  cancelar. ", MEXICO, "promocionales"),
        ("Álto", MEXICO, "promocionales"),
        ("stop", USA, "promotional"),
        ("Unsubscribe!", USA, "promotional"),
    ],
)
def test_keyword_opts_out_and_confirms_in_the_contacts_language(
    live: Live, db: Database, text: str, sender: str, language_word: str
) -> None:
    live.inbound("wamid.KW1", text, sender)
    contact = contact_by_wa_id(db, sender)
    state, events = consent_of(db, contact.id)
    assert state == "opt_out"
    assert events == [("opt_out", "keyword")]
    replies = replies_to(db, contact.id)
    assert len(replies) == 1
    assert language_word in replies[0]


def test_a_sentence_containing_a_keyword_is_not_an_opt_out(live: Live, db: Database) -> None:
    live.inbound(
        "wamid.S1", "¿Pueden bajar el precio? No quiero que se dé de baja mi pedido", MEXICO
    )
    live.inbound("wamid.S2", "stop sending the wrong size please", USA)
    for wa_id in (MEXICO, USA):
        contact = contact_by_wa_id(db, wa_id)
        assert consent_of(db, contact.id) == (None, [])
        assert replies_to(db, contact.id) == []


def test_the_same_keyword_delivered_twice_records_one_opt_out(live: Live, db: Database) -> None:
    live.inbound("wamid.D1", "BAJA", MEXICO)
    live.inbound("wamid.D1", "BAJA", MEXICO)  # Meta's retry
    contact = contact_by_wa_id(db, MEXICO)
    assert consent_of(db, contact.id)[1] == [("opt_out", "keyword")]
    assert len(replies_to(db, contact.id)) == 1


def test_workspace_keywords_replace_the_defaults(live: Live, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        ws.settings = {
            "optout_keywords": ["NO MAS", "PARAR"],
            "optout_confirmation": {"es": "Hecho, sin promociones."},
        }
    live.inbound("wamid.W1", "no más", MEXICO)
    live.inbound("wamid.W2", "STOP", USA)
    mexico = contact_by_wa_id(db, MEXICO)
    assert consent_of(db, mexico.id)[0] == "opt_out"
    assert replies_to(db, mexico.id) == ["Hecho, sin promociones."]
    assert consent_of(db, contact_by_wa_id(db, USA).id)[0] is None


def test_metas_131050_records_an_opt_out(live: Live, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        from puente.channels.models import Channel

        channel = session.scalars(select(Channel)).one()
        contact = make_contact(session, ws, wa_id=USA)
        conversation = make_conversation(session, channel, contact)
        make_message(
            session,
            conversation,
            timestamp=utcnow(),
            direction="outbound",
            source="broadcast",
            status="sent",
            wamid="wamid.PROMO1",
            text="Promo",
        )
        contact_id = contact.id
    live.status_failed("wamid.PROMO1", USA, 131050)
    assert consent_of(db, contact_id) == ("opt_out", [("opt_out", "meta_131050")])
    live.status_failed("wamid.PROMO1", USA, 131050)  # duplicate webhook
    assert consent_of(db, contact_id)[1] == [("opt_out", "meta_131050")]


def test_other_failures_are_not_opt_outs(live: Live, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        from puente.channels.models import Channel

        channel = session.scalars(select(Channel)).one()
        contact = make_contact(session, ws, wa_id=USA)
        conversation = make_conversation(session, channel, contact)
        make_message(
            session,
            conversation,
            timestamp=utcnow(),
            direction="outbound",
            source="broadcast",
            status="sent",
            wamid="wamid.PROMO2",
        )
        contact_id = contact.id
    live.status_failed("wamid.PROMO2", USA, 131049)  # a marketing cap, not a stop
    assert consent_of(db, contact_id) == (None, [])


def _marketing_template(session: Any, workspace_id: int, status: str = "APPROVED") -> None:
    session.add(
        MessageTemplate(
            workspace_id=workspace_id,
            waba_id=WABA_ID,
            name="promo_verano",
            language="es",
            category="MARKETING",
            status=status,
            meta_id="1",
            components=[{"type": "BODY", "text": "Ofertas"}],
        )
    )
    session.add(
        MessageTemplate(
            workspace_id=workspace_id,
            waba_id=WABA_ID,
            name="pedido_enviado",
            language="es",
            category="UTILITY",
            status="APPROVED",
            meta_id="2",
            components=[{"type": "BODY", "text": "Tu pedido va en camino"}],
        )
    )


def test_marketing_template_refused_to_an_opted_out_contact(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        contact = make_contact(session, ws, name="Ana López")
        _marketing_template(session, ws.id)
        do_record_consent(session, contact=contact, kind="opt_out", source="keyword")
        ws_id, contact_id = ws.id, contact.id
    with db.unit_of_work(unscoped="test") as session:
        with pytest.raises(OptedOut) as refused:
            check_template_send(
                session,
                workspace_id=ws_id,
                name="promo_verano",
                language="es",
                contact_id=contact_id,
            )
        assert refused.value.status_code == 409
        assert "Ana López opted out of marketing messages" in refused.value.message
        # Utility templates still go.
        utility = check_template_send(
            session, workspace_id=ws_id, name="pedido_enviado", language="es", contact_id=contact_id
        )
        assert utility is not None and utility.category == "UTILITY"


def test_opting_back_in_allows_marketing_again(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        contact = make_contact(session, ws)
        t0 = utcnow() - dt.timedelta(hours=1)
        do_record_consent(session, contact=contact, kind="opt_out", source="keyword", at=t0)
        do_record_consent(session, contact=contact, kind="opt_in", source="web_form")
        # A late report of the old opt-out does not overturn the newer opt-in.
        do_record_consent(
            session,
            contact=contact,
            kind="opt_out",
            source="meta_131050",
            at=t0 - dt.timedelta(hours=1),
        )
        check_marketing_consent(session, contact.id)


def test_workspace_may_require_an_explicit_opt_in(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        ws.settings = {"marketing_requires_opt_in": True}
        contact = make_contact(session, ws)
        with pytest.raises(OptedOut) as refused:
            check_marketing_consent(session, contact.id)
        assert refused.value.code == "contact_not_opted_in"
        do_record_consent(session, contact=contact, kind="opt_in", source="checkout")
        check_marketing_consent(session, contact.id)


def test_paused_template_is_refused_before_meta(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        contact = make_contact(session, ws)
        _marketing_template(session, ws.id, status="PAUSED")
        session.flush()
        with pytest.raises(TemplateNotSendable) as refused:
            check_template_send(
                session,
                workspace_id=ws.id,
                name="promo_verano",
                language="es",
                contact_id=contact.id,
            )
        assert "paused" in refused.value.message


def test_keyword_matching_ignores_case_accents_and_punctuation() -> None:
    keywords = ["STOP", "BAJA", "CANCELAR", "UNSUBSCRIBE", "ALTO"]
    assert match_optout_keyword("  Bája!! ", keywords) == "baja"
    assert match_optout_keyword("ALTO.", keywords) == "alto"
    assert match_optout_keyword("alto ahí", keywords) is None
    assert match_optout_keyword("", keywords) is None


# --- the API ---------------------------------------------------------------------------------


def test_consent_api_records_and_shows_history(live: Live, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        contact_id = make_contact(session, ws).id
    url = f"/api/v1/contacts/{contact_id}/consent"
    empty = live.http.get(url, headers=live.auth)
    assert empty.status_code == 200
    assert empty.json()["state"] is None
    assert empty.json()["marketing_allowed"] is True
    assert empty.json()["events"] == []

    r = live.http.post(
        url,
        json={"kind": "opt_in", "source": "checkout", "note": "ticked the box at checkout"},
        headers=live.auth,
    )
    assert r.status_code == 201, r.text
    r = live.http.post(url, json={"kind": "opt_out"}, headers=live.auth)
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "opt_out"
    assert body["marketing_allowed"] is False
    assert [(e["kind"], e["source"]) for e in body["events"]] == [
        ("opt_out", "api"),
        ("opt_in", "checkout"),
    ]
    assert body["events"][1]["by"] == "API token 'test'"
    assert body["events"][1]["note"] == "ticked the box at checkout"


def test_consent_api_refuses_bad_input_and_other_workspaces(live: Live, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        contact_id = make_contact(session, ws).id
        other = make_workspace(session, "Otra")
        other_token = make_token(session, other)
        reader = make_token(session, ws, scopes=["contacts:read"])
    url = f"/api/v1/contacts/{contact_id}/consent"
    bad = live.http.post(url, json={"kind": "maybe"}, headers=live.auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"].endswith("kind")
    naive = live.http.post(
        url, json={"kind": "opt_in", "at": "2026-01-01T10:00:00"}, headers=live.auth
    )
    assert naive.status_code == 422
    outsider = {"Authorization": f"Bearer {other_token}"}
    assert live.http.get(url, headers=outsider).status_code == 404
    assert live.http.post(url, json={"kind": "opt_out"}, headers=outsider).status_code == 404
    read_only = {"Authorization": f"Bearer {reader}"}
    assert live.http.get(url, headers=read_only).status_code == 200
    assert live.http.post(url, json={"kind": "opt_out"}, headers=read_only).status_code == 403
    assert live.http.get("/api/v1/contacts/999999/consent", headers=live.auth).status_code == 404


def test_sending_a_marketing_template_to_an_opted_out_contact_is_refused(
    live: Live, db: Database
) -> None:
    live.inbound("wamid.OUT1", "BAJA", MEXICO)  # the customer opts out
    contact = contact_by_wa_id(db, MEXICO)
    with db.unit_of_work(unscoped="test") as session:
        _marketing_template(session, live.workspace_id)
    before = len(replies_to(db, contact.id))

    def send(name: str) -> httpx.Response:
        body = {
            "contact_id": contact.id,
            "type": "template",
            "template": {"name": name, "language": {"code": "es"}},
        }
        return live.http.post("/api/v1/messages", json=body, headers=live.auth)

    refused = send("promo_verano")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "contact_opted_out"
    assert "opted out of marketing messages" in error["message"]
    assert len(replies_to(db, contact.id)) == before  # nothing queued

    assert send("pedido_enviado").status_code == 202  # utility still goes
