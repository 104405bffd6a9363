"""The knowledge-base bot end to end: the bot and its entries set up through the REST API,
customers writing from the sandbox's phones, and what those phones receive. It answers
what it knows, hands over when asked for a person (in their own words), after unanswered
questions, or once an agent writes; once per message however Meta delivers it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from puente.automation.kb import DEFAULT_HANDOFF
from puente.automation.kb_demo import DEMO_ENTRIES
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.ingest.models import EventState, WebhookEvent
from tests.channels.conftest import NUMBER, WABA, Coex, make_coex  # noqa: F401 (a fixture)
from tests.factories import PASSWORD, make_user
from tests.ingest.helpers import dumps, envelope, messages_change, signed, text_message
from tests.waiting import wait_until
from tests.webclient import WebClient

LUCIA, PEDRO, JOHN = "573001110001", "573001110002", "16505550003"
HOURS = DEMO_ENTRIES[0][1]
PAYMENT = DEMO_ENTRIES[3][1]
AGENT = "agente@example.com"


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    live = make_coex()
    live.onboard(import_history=False)
    for phrasings, answer in DEMO_ENTRIES[:6]:
        body = {"language": "es", "phrasings": list(phrasings), "answer": answer}
        res = live.api.post("/kb/entries", json=body)
        assert res.status_code == 201, res.text
    set_bot(live, enabled=True)
    return live


def set_bot(live: Coex, **changes: Any) -> None:
    settings = live.api.get("/kb/settings").json()
    res = live.api.put("/kb/settings", json={**settings, **changes})
    assert res.status_code == 200, res.text


def customer_writes(live: Coex, sender: str, text: str) -> str:
    res = live.control.post(
        f"/numbers/{NUMBER}/inbound", json={"from": sender, "name": "Cliente", "text": text}
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def messages_with(live: Coex, wa_id: str) -> list[dict[str, Any]]:
    with live.db.read(unscoped="test") as session:
        rows = session.execute(
            select(Message.wamid, Message.source, Message.text)
            .join(Contact, Contact.id == Message.contact_id)
            .where(Contact.wa_id == wa_id)
            .order_by(Message.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def stored(live: Coex, wa_id: str, wamid: str) -> list[dict[str, Any]]:
    """Every message with `wa_id` once Puente stored `wamid`: what the bot queued for it
    commits in the same transaction, so it is there too by then."""
    found: list[dict[str, Any]] = wait_until(
        lambda: (m := messages_with(live, wa_id)) and any(x["wamid"] == wamid for x in m) and m,
        what=f"message {wamid} stored",
    )
    return found


def bot_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages if m["source"] == "bot"]


def phone_received(live: Coex, wa_id: str) -> list[str]:
    chat = live.control.get(f"/numbers/{NUMBER}/chats/{wa_id}").json()
    return [m["content"]["text"]["body"] for m in chat if m["direction"] == "out"]


def conversation_of(live: Coex, wa_id: str) -> Conversation:
    with live.db.read(unscoped="test") as session:
        conversation = session.scalars(
            select(Conversation)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.wa_id == wa_id)
        ).one()
        session.expunge(conversation)
        return conversation


def agent_signs_in(live: Coex) -> WebClient:
    from puente.accounts.models import Workspace

    with live.db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, live.workspace_id)
        assert workspace is not None
        make_user(session, workspace, role="agent", email=AGENT, name="Ana Agente")
    web = WebClient(httpx.Client(base_url=live.puente.url, timeout=30))
    assert web.login(AGENT, PASSWORD).status_code == 200
    return web


def test_a_question_is_answered_and_the_phone_receives_the_answer(live: Coex) -> None:
    asked = customer_writes(live, LUCIA, "hola, a que hora abren?")
    assert bot_texts(stored(live, LUCIA, asked)) == [HOURS]
    wait_until(lambda: phone_received(live, LUCIA) == [HOURS], what="the answer on the phone")
    conversation = conversation_of(live, LUCIA)
    assert not conversation.bot_paused
    assert conversation.waiting_since is None  # answered: nobody is waited for

    asked = customer_writes(live, LUCIA, "¿Aceptan tarjetas?")
    assert bot_texts(stored(live, LUCIA, asked)) == [HOURS, PAYMENT]


def test_asking_for_a_person_hands_over_to_the_team(live: Coex) -> None:
    asked = customer_writes(live, PEDRO, "Quiero hablar con una PERSONA")
    handoff = DEFAULT_HANDOFF["es"]
    assert bot_texts(stored(live, PEDRO, asked)) == [handoff]
    wait_until(lambda: phone_received(live, PEDRO) == [handoff], what="the handoff message")
    conversation = conversation_of(live, PEDRO)
    assert conversation.bot_paused
    assert (conversation.status, conversation.assignee_id) == ("open", None)
    assert conversation.waiting_since is not None

    # The bot has stepped back: a question it knows gets no answer now.
    asked = customer_writes(live, PEDRO, "¿A qué hora abren?")
    assert bot_texts(stored(live, PEDRO, asked)) == [handoff]

    # The team sees it, unassigned, with the bot paused.
    web = agent_signs_in(live)
    page = web.get("/inbox?tab=unassigned")
    assert f'data-conversation="{conversation.id}"' in page.text
    panel = web.get(f"/inbox/c/{conversation.id}")
    assert "Bot paused" in panel.text and "Puente paused the bot" in panel.text


def test_an_english_request_for_a_person_gets_the_english_handoff(live: Coex) -> None:
    asked = customer_writes(live, JOHN, "agent please")
    assert bot_texts(stored(live, JOHN, asked)) == [DEFAULT_HANDOFF["en"]]
    assert conversation_of(live, JOHN).bot_paused


def test_unanswered_questions_in_a_row_hand_over(live: Coex) -> None:
    set_bot(live, max_unanswered=2)
    first = customer_writes(live, LUCIA, "¿Venden celulares usados?")
    assert bot_texts(stored(live, LUCIA, first)) == []
    assert not conversation_of(live, LUCIA).bot_paused
    second = customer_writes(live, LUCIA, "¿Y arreglan computadores?")
    assert bot_texts(stored(live, LUCIA, second)) == [DEFAULT_HANDOFF["es"]]
    assert conversation_of(live, LUCIA).bot_paused


def test_an_answer_in_between_starts_the_count_again(live: Coex) -> None:
    set_bot(live, max_unanswered=2)
    customer_writes(live, LUCIA, "¿Venden celulares usados?")
    answered = customer_writes(live, LUCIA, "¿A qué hora abren?")
    assert bot_texts(stored(live, LUCIA, answered)) == [HOURS]
    again = customer_writes(live, LUCIA, "¿Y arreglan computadores?")
    assert bot_texts(stored(live, LUCIA, again)) == [HOURS]
    assert not conversation_of(live, LUCIA).bot_paused


def test_an_agents_reply_pauses_the_bot(live: Coex) -> None:
    asked = customer_writes(live, LUCIA, "¿A qué hora abren?")
    assert bot_texts(stored(live, LUCIA, asked)) == [HOURS]
    conversation = conversation_of(live, LUCIA)
    web = agent_signs_in(live)
    web.get(f"/inbox/c/{conversation.id}")
    sent = web.post(f"/inbox/c/{conversation.id}/send", {"body": "Hola, soy Ana. ¿Te ayudo?"})
    assert sent.status_code < 400, sent.text
    assert conversation_of(live, LUCIA).bot_paused

    asked = customer_writes(live, LUCIA, "¿Aceptan tarjetas?")
    assert bot_texts(stored(live, LUCIA, asked)) == [HOURS]


def test_a_bot_switched_off_answers_nobody(live: Coex) -> None:
    set_bot(live, enabled=False)
    asked = customer_writes(live, LUCIA, "¿A qué hora abren?")
    assert bot_texts(stored(live, LUCIA, asked)) == []


def nothing_left_to_process(live: Coex) -> bool:
    with live.db.read(unscoped="test") as session:
        states = session.scalars(select(WebhookEvent.state)).all()
    return bool(states) and all(s != EventState.NEW.value for s in states)


def test_a_message_delivered_twice_is_answered_once(live: Coex) -> None:
    # Meta posts every webhook twice, and later sends the same message again in another
    # batch (a different body, so it is stored and processed as an event of its own).
    res = live.control.patch("/config", json={"faults": {"duplicate": 1.0}})
    assert res.status_code == 200, res.text
    before = live.control.get("/webhooks/stats").json()
    asked = customer_writes(live, LUCIA, "¿A qué hora abren?")
    stored(live, LUCIA, asked)

    def both_copies_acknowledged() -> bool:
        stats = live.control.get("/webhooks/stats").json()
        return bool(stats["duplicated"] > before["duplicated"] and stats["acked"] > before["acked"])

    wait_until(both_copies_acknowledged, what="both copies of the webhook acknowledged")
    again = text_message(asked, "¿A qué hora abren?", LUCIA)
    body = dumps(
        envelope(messages_change([again], phone_number_id=NUMBER, sender=LUCIA), waba_id=WABA)
    )
    res = httpx.post(f"{live.puente.url}/webhooks/whatsapp", content=body, headers=signed(body))
    assert res.status_code == 200, res.text
    wait_until(lambda: nothing_left_to_process(live), what="every copy processed")

    assert bot_texts(messages_with(live, LUCIA)) == [HOURS]
    wait_until(lambda: phone_received(live, LUCIA) == [HOURS], what="one answer on the phone")
