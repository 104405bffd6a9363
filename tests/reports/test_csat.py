"""Satisfaction surveys end to end: a live Puente with its workers and the Meta sandbox over
real HTTP. An agent closes a conversation in the inbox; the customer's phone gets the
survey through the outbox; the answer (a tap, a typed number, the words of an answer) is
stored once however often Meta delivers it, keeps the conversation closed and notifies
nobody; anything else reopens it as usual; a comment follows when asked for; outside the
24-hour window the number's template goes, or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from puente.accounts.models import Workspace
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.models import (
    Conversation,
    ConversationEvent,
    Message,
    Notification,
)
from puente.ingest.models import EventState, WebhookEvent
from puente.outbound.models import OutboxItem
from puente.reports.csat_settings import do_set_survey
from puente.reports.models import CsatSurvey, ReportFact
from tests.channels.conftest import NUMBER, WABA, Coex, make_coex  # noqa: F401 (a fixture)
from tests.factories import PASSWORD, make_user
from tests.ingest.helpers import dumps, envelope, signed
from tests.waiting import wait_until
from tests.webclient import WebClient

LUCIA, PEDRO = "573001110001", "573001110002"
AGENT = "agente@example.com"
QUESTION = "¡Gracias por escribirnos! ¿Cómo calificarías la atención que recibiste?"
BUTTONS = ["😀 Excelente", "😐 Regular", "😞 Mala"]
COMMENT_QUESTION = "¿Quieres contarnos algo más? Escribe tu comentario aquí."


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    live = make_coex()
    live.onboard(import_history=False)
    with live.db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, live.workspace_id)
        assert workspace is not None
        make_user(session, workspace, role="agent", email=AGENT, name="Ana Agente")
    return live


@pytest.fixture
def agent(live: Coex) -> WebClient:
    web = WebClient(httpx.Client(base_url=live.puente.url, timeout=30))
    web.login(AGENT, PASSWORD)
    return web


def survey_on(live: Coex, **raw: Any) -> None:
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        channel = session.scalars(select(Channel)).one()
        do_set_survey(session, channel, {"mode": "buttons", "language": "es", **raw}, None)


def customer_writes(live: Coex, sender: str, text: str, **extra: Any) -> None:
    body = {"from": sender, "name": "Lucía", "text": text, **extra}
    res = live.control.post(f"/numbers/{NUMBER}/inbound", json=body)
    assert res.status_code == 201, res.text


def taps(live: Coex, sender: str, reply_id: str, title: str) -> None:
    reply = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
    customer_writes(live, sender, "", type="interactive", payload=reply)


def conversation(live: Coex, wa_id: str) -> Conversation:
    with live.db.read(unscoped="test") as session:
        found = session.scalars(
            select(Conversation).join(Contact).where(Contact.wa_id == wa_id)
        ).one_or_none()
        assert found is not None, "no conversation yet"
        session.expunge(found)
        return found


def customer_messages(live: Coex, wa_id: str) -> int:
    with live.db.read(unscoped="test") as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Message)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.wa_id == wa_id, Message.source == "customer")
            )
            or 0
        )


def opened_and_closed(live: Coex, agent: WebClient, wa_id: str, text: str = "Hola") -> int:
    """The customer writes; the agent takes the conversation, then closes it."""
    before = customer_messages(live, wa_id)
    customer_writes(live, wa_id, text)
    wait_until(lambda: customer_messages(live, wa_id) > before, what="the customer's message")
    cid = conversation(live, wa_id).id
    assert agent.post(f"/inbox/c/{cid}/assign", {"assignee_id": "me"}).status_code == 303
    res = agent.post(f"/inbox/c/{cid}/close", {"expected_status": "open"})
    assert res.status_code == 303, res.text
    return cid


def phone_received(live: Coex, wa_id: str) -> list[Any]:
    """What the customer's phone shows from the business: texts, a question with its
    buttons or list rows (title and id), a template's name."""
    chat = live.control.get(f"/numbers/{NUMBER}/chats/{wa_id}").json()
    shown: list[Any] = []
    for m in chat:
        if m["direction"] != "out":
            continue
        content = m["content"]
        if "text" in content:
            shown.append(content["text"]["body"])
        elif "interactive" in content:
            action = content["interactive"]["action"]
            options = [(b["reply"]["title"], b["reply"]["id"]) for b in action.get("buttons", [])]
            for section in action.get("sections", []):
                options += [(r["title"], r["id"]) for r in section["rows"]]
            shown.append((content["interactive"]["body"]["text"], options))
        elif "template" in content:
            shown.append(("template", content["template"]["name"]))
    return shown


def the_survey(live: Coex, wa_id: str) -> tuple[str, list[tuple[str, str]]]:
    found = wait_until(
        lambda: [m for m in phone_received(live, wa_id) if isinstance(m, tuple)],
        what="the survey on the phone",
    )
    question: tuple[str, list[tuple[str, str]]] = found[-1]
    return question


def surveys(live: Coex) -> list[CsatSurvey]:
    with live.db.read(unscoped="test") as session:
        found = list(session.scalars(select(CsatSurvey).order_by(CsatSurvey.id)))
        for survey in found:
            session.expunge(survey)
        return found


def csat_facts(live: Coex) -> list[tuple[str, int]]:
    with live.db.read(unscoped="test") as session:
        rows = session.execute(
            select(ReportFact.label, ReportFact.count).where(ReportFact.kind == "csat")
        ).tuples()
        return list(rows)


def timeline(live: Coex, cid: int) -> list[tuple[str, dict[str, Any]]]:
    with live.db.read(unscoped="test") as session:
        rows = session.execute(
            select(ConversationEvent.kind, ConversationEvent.data)
            .where(ConversationEvent.conversation_id == cid)
            .order_by(ConversationEvent.id)
        ).tuples()
        return [(kind, data) for kind, data in rows if kind.startswith("csat")]


def notifications(live: Coex) -> int:
    with live.db.read(unscoped="test") as session:
        return int(session.scalar(select(func.count()).select_from(Notification)) or 0)


def nothing_left_to_process(live: Coex) -> bool:
    with live.db.read(unscoped="test") as session:
        states = session.scalars(select(WebhookEvent.state)).all()
    return bool(states) and all(s != EventState.NEW.value for s in states)


def test_closing_sends_the_survey_and_a_tap_delivered_again_and_again_counts_once(
    live: Coex, agent: WebClient
) -> None:
    survey_on(live)
    cid = opened_and_closed(live, agent, LUCIA)
    question, options = the_survey(live, LUCIA)
    assert question == QUESTION
    assert [title for title, _ in options] == BUTTONS
    notified, unread = notifications(live), conversation(live, LUCIA).unread_count

    # Meta posts every webhook twice; the customer taps "Excelente".
    res = live.control.patch("/config", json={"faults": {"duplicate": 1.0}})
    assert res.status_code == 200, res.text
    title, reply_id = options[0]
    taps(live, LUCIA, reply_id, title)
    wait_until(lambda: surveys(live)[0].state == "answered", what="the answer")
    # Later Meta sends the same message again, in a batch of its own.
    sent = [w for w in live.control.get("/webhooks", params={"field": "messages"}).json()]
    answer = next(
        w for w in sent if w["value"].get("messages", [{}])[0].get("type") == "interactive"
    )
    body = dumps(envelope({"field": "messages", "value": answer["value"]}, waba_id=WABA))
    res = httpx.post(f"{live.puente.url}/webhooks/whatsapp", content=body, headers=signed(body))
    assert res.status_code == 200, res.text
    wait_until(lambda: nothing_left_to_process(live), what="every copy processed")

    (survey,) = surveys(live)
    assert (survey.score, survey.comment, survey.conversation_id) == (5, None, cid)
    assert customer_messages(live, LUCIA) == 2  # "Hola" and the tap, each once
    assert csat_facts(live) == [("5", 1)]
    assert timeline(live, cid) == [("csat", {"survey_id": survey.id, "score": 5})]
    after = conversation(live, LUCIA)
    assert (after.status, after.unread_count, after.waiting_since) == ("resolved", unread, None)
    assert notifications(live) == notified
    # The survey asked once; nothing else (a bot, a workflow) answered the tap.
    assert len(phone_received(live, LUCIA)) == 1

    # The agent sees the score in the conversation's panel and the contact's timeline.
    page = agent.get(f"/inbox/c/{cid}")
    assert 'data-testid="csat-score">5 of 5<' in page.text
    assert "The customer rated the conversation 5 of 5" in page.text
    contact = agent.get(f"/contacts/{after.contact_id}")
    assert "The customer rated the conversation 5 of 5" in contact.text


def test_a_typed_number_answers_and_anything_else_reopens_the_conversation(
    live: Coex, agent: WebClient
) -> None:
    survey_on(live, mode="list")
    lucia = opened_and_closed(live, agent, LUCIA)
    _, rows = the_survey(live, LUCIA)
    assert [title for title, _ in rows] == ["Excelente", "Buena", "Regular", "Mala", "Muy mala"]
    customer_writes(live, LUCIA, "4")
    wait_until(lambda: surveys(live)[0].state == "answered", what="Lucía's answer")
    assert surveys(live)[0].score == 4
    assert conversation(live, LUCIA).status == "resolved"

    pedro = opened_and_closed(live, agent, PEDRO)
    the_survey(live, PEDRO)
    notified, unread = notifications(live), conversation(live, PEDRO).unread_count
    customer_writes(live, PEDRO, "Una pregunta más: ¿tienen envíos?")
    wait_until(lambda: conversation(live, PEDRO).status == "open", what="Pedro's reopening")
    pedros = [s for s in surveys(live) if s.conversation_id == pedro]
    assert [(s.state, s.score) for s in pedros] == [("expired", None)]
    after = conversation(live, PEDRO)
    assert (after.unread_count, after.waiting_since is not None) == (unread + 1, True)
    assert notifications(live) == notified + 1  # his agent hears of it, as always
    assert timeline(live, pedro) == []
    assert csat_facts(live) == [("4", 1)]
    assert lucia != pedro


def test_an_answers_words_count_and_a_comment_follows_when_asked_for(
    live: Coex, agent: WebClient
) -> None:
    survey_on(live, follow_up=True)
    cid = opened_and_closed(live, agent, LUCIA)
    the_survey(live, LUCIA)
    unread = conversation(live, LUCIA).unread_count
    customer_writes(live, LUCIA, "regular")
    wait_until(
        lambda: phone_received(live, LUCIA)[-1] == COMMENT_QUESTION, what="the comment question"
    )
    assert [(s.state, s.score) for s in surveys(live)] == [("comment", 3)]
    customer_writes(live, LUCIA, "Tardaron un poco, pero resolvieron todo.")
    wait_until(lambda: surveys(live)[0].state == "answered", what="the comment")

    (survey,) = surveys(live)
    assert (survey.score, survey.comment) == (3, "Tardaron un poco, pero resolvieron todo.")
    assert [kind for kind, _ in timeline(live, cid)] == ["csat", "csat_comment"]
    after = conversation(live, LUCIA)
    assert (after.status, after.unread_count) == ("resolved", unread)
    assert csat_facts(live) == [("3", 1)]


def test_a_new_survey_waits_until_the_last_one_is_answered(live: Coex, agent: WebClient) -> None:
    survey_on(live)
    cid = opened_and_closed(live, agent, LUCIA)
    the_survey(live, LUCIA)
    assert agent.post(f"/inbox/c/{cid}/reopen", {"expected_status": "resolved"}).status_code == 303
    assert agent.post(f"/inbox/c/{cid}/close", {"expected_status": "open"}).status_code == 303
    assert [s.state for s in surveys(live)] == ["asked"]
    with live.db.read(unscoped="test") as session:
        items = session.scalar(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.conversation_id == cid)
        )
    assert items == 1


def _close_window(live: Coex, wa_id: str) -> None:
    import datetime as dt

    with live.db.unit_of_work(unscoped="test") as session:
        found = session.scalars(select(Conversation).join(Contact).where(Contact.wa_id == wa_id))
        found.one().window_expires_at -= dt.timedelta(days=2)


def test_outside_the_window_the_template_goes_and_without_one_nothing(
    live: Coex, agent: WebClient
) -> None:
    synced = live.api.post("/templates/sync")  # the number's approved templates
    assert synced.status_code == 200, synced.text
    survey_on(live)
    customer_writes(live, LUCIA, "Hola")
    wait_until(lambda: customer_messages(live, LUCIA) == 1, what="the message")
    _close_window(live, LUCIA)
    cid = conversation(live, LUCIA).id
    assert agent.post(f"/inbox/c/{cid}/close", {"expected_status": "open"}).status_code == 303
    assert surveys(live) == []  # the close committed without a survey: none will go

    survey_on(live, template={"name": "hello_world", "language": "en_US"})
    assert agent.post(f"/inbox/c/{cid}/reopen", {"expected_status": "resolved"}).status_code == 303
    assert agent.post(f"/inbox/c/{cid}/close", {"expected_status": "open"}).status_code == 303
    wait_until(
        lambda: phone_received(live, LUCIA) == [("template", "hello_world")],
        what="the template on the phone",
    )
    assert [s.state for s in surveys(live)] == ["asked"]


def test_with_the_survey_off_closing_sends_nothing(live: Coex, agent: WebClient) -> None:
    cid = opened_and_closed(live, agent, LUCIA)
    assert surveys(live) == []
    with live.db.read(unscoped="test") as session:
        items = session.scalar(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.conversation_id == cid)
        )
    assert items == 0  # queued with the close or never: nothing will reach the phone
