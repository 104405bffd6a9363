"""The triggers and steps the ready-made workflows do not use, end to end on a live Puente
with its workers and the sandbox's phones: a tag added, a contact field changed, no reply
from the team for N minutes, a broadcast reply; a workflow starting another; the steps
that change the contact and the conversation (set a field, remove a tag, a note, snooze,
unassign, the bot off); and a message Meta delivers twice starting each workflow once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select, update

from puente.automation.workflows.models import RunStatus, WorkflowRun
from puente.automation.workflows.worker import sweep_step
from puente.contacts.models import Contact
from puente.contacts.service import do_add_tags, do_update_contact, tags_of
from puente.conversations.models import Conversation, Note
from tests.automation.test_workflow_runs import customer_writes, install, phone_received, runs
from tests.channels.conftest import NUMBER, WABA, Coex, make_coex  # noqa: F401 (a fixture)
from tests.ingest.helpers import dumps, envelope, messages_change, signed, text_message
from tests.waiting import wait_until

LUCIA, PEDRO = "573001110001", "573001110002"


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    live = make_coex()
    live.onboard(import_history=False)
    return live


def _contact(live: Coex, wa_id: str) -> Contact:
    with live.db.read(unscoped="test") as session:
        contact = session.scalars(select(Contact).where(Contact.wa_id == wa_id)).one()
        session.expunge(contact)
        return contact


def _conversation(live: Coex, wa_id: str) -> Conversation:
    with live.db.read(unscoped="test") as session:
        conversation = session.scalars(
            select(Conversation).join(Contact).where(Contact.wa_id == wa_id)
        ).one()
        session.expunge(conversation)
        return conversation


def _wrote(live: Coex, wa_id: str, text: str) -> None:
    customer_writes(live, wa_id, text)
    wait_until(lambda: _has_conversation(live, wa_id), what="the message stored")


def _has_conversation(live: Coex, wa_id: str) -> bool:
    with live.db.read(unscoped="test") as session:
        return (
            session.scalar(select(Conversation.id).join(Contact).where(Contact.wa_id == wa_id))
            is not None
        )


def _done(live: Coex, count: int) -> list[WorkflowRun]:
    found: list[WorkflowRun] = wait_until(
        lambda: (r := runs(live)) and len(r) == count and all(x.status == "done" for x in r) and r,
        what=f"{count} runs done",
    )
    return found


def test_a_tag_added_starts_a_workflow_that_changes_the_contact_and_the_conversation(
    live: Coex,
) -> None:
    install(
        live,
        {
            "trigger": {"type": "tag_added", "tag": "VIP"},
            "steps": [
                {
                    "id": "field",
                    "type": "set_field",
                    "field": "nivel",
                    "value": "oro",
                    "next": "untag",
                },
                {"id": "untag", "type": "remove_tag", "tag": "nuevo", "next": "note"},
                {
                    "id": "note",
                    "type": "note",
                    "text": "Cliente VIP: {custom.nivel}",
                    "next": "bot",
                },
                {"id": "bot", "type": "bot_off", "next": "nap"},
                {"id": "nap", "type": "snooze", "minutes": 30},
            ],
        },
        name="VIP",
    )
    _wrote(live, LUCIA, "hola")
    contact = _contact(live, LUCIA)
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        row = session.get(Contact, contact.id)
        assert row is not None
        do_add_tags(session, row, ["nuevo"])  # not the trigger's tag: nothing starts
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        row = session.get(Contact, contact.id)
        assert row is not None
        do_add_tags(session, row, ["vip"])  # any case
    _done(live, 1)
    assert _contact(live, LUCIA).custom_fields == {"nivel": "oro"}
    with live.db.read(unscoped="test") as session:
        assert tags_of(session, [contact.id])[contact.id] == ["vip"]
        assert session.scalars(select(Note.body)).all() == ["Cliente VIP: oro"]
    conversation = _conversation(live, LUCIA)
    assert conversation.status == "snoozed" and conversation.bot_paused


def test_a_field_changed_starts_a_workflow_that_starts_another(live: Coex) -> None:
    second = install(
        live,
        {
            "trigger": {"type": "manual"},
            "steps": [{"id": "hi", "type": "send_message", "text": "Tu ciudad: {custom.ciudad}"}],
        },
        name="Saludo por ciudad",
    )
    install(
        live,
        {
            "trigger": {"type": "field_changed", "field": "ciudad"},
            "steps": [{"id": "go", "type": "start_workflow", "workflow_id": second}],
        },
        name="Ciudad cambiada",
    )
    _wrote(live, LUCIA, "hola")
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        contact = session.scalars(select(Contact).where(Contact.wa_id == LUCIA)).one()
        do_update_contact(session, contact, custom_fields={"ciudad": "Medellín"})
    _done(live, 2)
    wait_until(
        lambda: phone_received(live, LUCIA) == ["Tu ciudad: Medellín"], what="the second's message"
    )


def test_no_reply_from_the_team_for_n_minutes_starts_a_workflow_once(live: Coex) -> None:
    install(
        live,
        {
            "trigger": {"type": "no_reply", "minutes": 5, "waiting_on": "team"},
            "steps": [
                {
                    "id": "sorry",
                    "type": "send_message",
                    "text": "Perdón la demora, ya te atendemos.",
                },
                {"id": "drop", "type": "unassign"},
            ],
        },
        name="Sin respuesta",
    )
    _wrote(live, LUCIA, "¿hay alguien?")
    _wrote(live, PEDRO, "hola")
    # Lucía has waited six minutes, Pedro just wrote.
    conversation = _conversation(live, LUCIA)
    with live.db.unit_of_work(unscoped="test") as session:
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(waiting_since=conversation.waiting_since - dt.timedelta(minutes=6))
        )
    assert sweep_step(live.db) == 1
    assert sweep_step(live.db) == 0  # once per message waited on
    wait_until(
        lambda: phone_received(live, LUCIA) == ["Perdón la demora, ya te atendemos."],
        what="the apology",
    )
    assert phone_received(live, PEDRO) == []


def test_a_message_delivered_twice_starts_each_workflow_once(live: Coex) -> None:
    install(
        live,
        {
            "trigger": {"type": "message_received", "match": "keyword", "keywords": ["precio"]},
            "steps": [{"id": "a", "type": "send_message", "text": "Te paso los precios."}],
        },
    )
    # The sandbox delivers each webhook twice, and the same message comes once more.
    res = live.control.patch("/config", json={"faults": {"duplicate": 1.0}})
    assert res.status_code == 200, res.text
    wamid = customer_writes(live, LUCIA, "precio")
    again = text_message(wamid, "precio", LUCIA)
    body = dumps(
        envelope(messages_change([again], phone_number_id=NUMBER, sender=LUCIA), waba_id=WABA)
    )
    res = httpx.post(f"{live.puente.url}/webhooks/whatsapp", content=body, headers=signed(body))
    assert res.status_code == 200, res.text
    wait_until(lambda: phone_received(live, LUCIA) == ["Te paso los precios."], what="the answer")
    _done(live, 1)


def test_a_broadcast_reply_starts_a_workflow(live: Coex) -> None:
    install(
        live,
        {
            "trigger": {"type": "broadcast_reply"},
            "steps": [{"id": "thanks", "type": "send_message", "text": "¡Gracias por responder!"}],
        },
        name="Respuesta a difusión",
    )
    synced = live.api.post("/templates/sync")
    assert synced.status_code == 200, synced.text
    _wrote(live, LUCIA, "hola")
    contact = _contact(live, LUCIA)
    created = live.api.post(
        "/broadcasts",
        json={
            "name": "Promo",
            "template": {"name": "hello_world", "language": "en_US"},
            "audience": {"kind": "contacts", "contact_ids": [contact.id]},
        },
    )
    assert created.status_code == 201, created.text
    wait_until(lambda: _broadcast_sent(live), what="the broadcast on the phone")
    customer_writes(live, LUCIA, "me interesa")
    wait_until(lambda: "¡Gracias por responder!" in phone_received(live, LUCIA), what="the thanks")
    assert [r.trigger for r in runs(live)] == ["broadcast_reply"]
    assert runs(live)[0].status == RunStatus.DONE.value


def _broadcast_sent(live: Coex) -> bool:
    chat = live.control.get(f"/numbers/{NUMBER}/chats/{LUCIA}").json()
    return any(m["direction"] == "out" and m["type"] == "template" for m in chat)
