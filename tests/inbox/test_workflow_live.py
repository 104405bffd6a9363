"""Workflows in the inbox with a live Puente, its workers and the Meta sandbox: the owner
runs a workflow from a conversation and the customer's phone receives its message, then
the timeline shows the run; the owner answering from the phone pauses bots and workflows
for the minutes set on the number's page, and the conversation says until when."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.dates import format_datetime, format_time
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import RunStatus, WorkflowRun
from puente.automation.workflows.service import do_create_workflow, do_publish, do_set_enabled
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from tests.channels.conftest import NUMBER, Coex, make_coex  # noqa: F401 (a fixture)
from tests.factories import PASSWORD, make_user
from tests.waiting import wait_until
from tests.webclient import WebClient

LUCIA = "573001110001"
OWNER = "olga@taller.example"
ZONE = "America/Bogota"

GREETING: dict[str, Any] = {
    "trigger": {"type": "manual"},
    "steps": [
        {
            "id": "hello",
            "type": "send_message",
            "title": "Saludo",
            "text": "Hola {contact.name|}, te escribe el taller",
        }
    ],
}


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    live = make_coex()
    live.onboard(import_history=False)
    with live.db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, live.workspace_id)
        assert workspace is not None
        owner = make_user(session, workspace, role="owner", name="Olga Dueña", email=OWNER)
        owner.timezone = ZONE
    return live


def sign_in(live: Coex) -> WebClient:
    web = WebClient(httpx.Client(base_url=live.puente.url, timeout=30))
    assert web.login(OWNER, PASSWORD).status_code == 200
    return web


def customer_writes(live: Coex, text: str) -> None:
    body = {"from": LUCIA, "name": "Lucía", "text": text}
    res = live.control.post(f"/numbers/{NUMBER}/inbound", json=body)
    assert res.status_code == 201, res.text


def owner_answers_from_the_phone(live: Coex, text: str) -> None:
    res = live.control.post(f"/numbers/{NUMBER}/owner/messages", json={"to": LUCIA, "text": text})
    assert res.status_code in (200, 201), res.text


def phone_received(live: Coex) -> list[str]:
    chat = live.control.get(f"/numbers/{NUMBER}/chats/{LUCIA}").json()
    return [
        m["content"]["text"]["body"]
        for m in chat
        if m["direction"] == "out" and "text" in m["content"]
    ]


def conversation_of(live: Coex) -> Conversation | None:
    with live.db.read(unscoped="test") as session:
        found = session.scalars(
            select(Conversation)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.wa_id == LUCIA)
        ).first()
        if found is not None:
            session.expunge(found)
        return found


def runs(live: Coex) -> list[WorkflowRun]:
    with live.db.read(unscoped="test") as session:
        found = list(session.scalars(select(WorkflowRun).order_by(WorkflowRun.id)))
        for run in found:
            session.expunge(run)
        return found


def install(live: Coex, definition: dict[str, Any], name: str) -> int:
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        workflow = do_create_workflow(
            session, live.workspace_id, name=name, definition=parse_definition(definition)
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, True)
        return workflow.id


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def test_the_owner_runs_a_workflow_from_the_conversation_and_the_customer_gets_it(
    live: Coex,
) -> None:
    workflow_id = install(live, GREETING, "Saludo del taller")
    customer_writes(live, "Hola, ¿está lista mi moto?")
    conversation = wait_until(lambda: conversation_of(live), what="the conversation")
    web = sign_in(live)

    page = web.get(f"/inbox/c/{conversation.id}").text
    assert 'data-testid="run-workflow-form"' in page
    form = page[page.index('data-testid="run-workflow-form"') :]
    started = web.post(
        f"/inbox/c/{conversation.id}/workflows/run",
        {"workflow_id": str(workflow_id), "key": form_value(form, "key")},
        follow_redirects=True,
    )
    assert started.status_code == 200
    assert "The workflow started: its steps show in the timeline." in started.text

    wait_until(
        lambda: phone_received(live) == ["Hola Lucía, te escribe el taller"],
        what="the workflow's message on the customer's phone",
    )
    wait_until(lambda: runs(live)[0].status == RunStatus.DONE.value, what="the run done")
    (run,) = runs(live)
    page = web.get(f"/inbox/c/{conversation.id}").text
    start = page.index(">", page.index(f'id="wr-{run.id}"')) + 1
    run_html = page[start : page.index("</details>", start)]
    shown = " ".join(re.sub(r"<[^>]+>", " ", run_html).split())
    assert shown.startswith("⚙ Workflow “Saludo del taller” started (started by hand) · Done")
    assert "Saludo · Done: Hola Lucía, te escribe el taller" in shown


def _settings(web: WebClient, channel_id: int, minutes: str) -> httpx.Response:
    return web.post(
        f"/channels/{channel_id}/settings",
        {"pause_bot_on_owner_reply": "yes", "owner_pause_minutes": minutes},
        follow_redirects=False,
    )


def _channel_settings(live: Coex) -> dict[str, Any]:
    with live.db.read(unscoped="test") as session:
        channel = session.scalars(select(Channel)).one()
        return dict(channel.settings or {})


def _bot_state(web: WebClient, conversation_id: int) -> str:
    panel = web.get(f"/inbox/c/{conversation_id}/panel").text
    found = re.search(r'data-testid="bot-state">([^<]*)<', panel)
    assert found, panel
    return found.group(1).strip()


def test_the_owners_reply_pauses_the_bot_for_the_minutes_set_on_the_number(live: Coex) -> None:
    web = sign_in(live)
    with live.db.read(unscoped="test") as session:
        channel_id = session.scalars(select(Channel.id)).one()

    # The number's page holds the setting, 60 minutes unless changed; a bad value is
    # named and changes nothing.
    page = web.get(f"/channels/{channel_id}").text
    assert 'name="owner_pause_minutes" value="60"' in page
    for bad in ("media hora", "-5", "20000", "1.5"):
        refused = _settings(web, channel_id, bad)
        assert refused.status_code == 422, bad
        assert "must be a whole number of minutes from 0 to 10080" in refused.text
        assert f'name="owner_pause_minutes" value="{bad}"' in refused.text
    assert "owner_pause_minutes" not in _channel_settings(live)
    assert _settings(web, channel_id, "30").status_code == 303
    assert _channel_settings(live)["owner_pause_minutes"] == 30
    assert 'name="owner_pause_minutes" value="30"' in web.get(f"/channels/{channel_id}").text

    customer_writes(live, "Hola, ¿abren mañana?")
    conversation = wait_until(lambda: conversation_of(live), what="the conversation")
    assert _bot_state(web, conversation.id) == "Bot active"
    owner_answers_from_the_phone(live, "Sí, de 9 a 6")
    paused = wait_until(
        lambda: (c := conversation_of(live)) is not None and c.bot_paused_until and c,
        what="the pause after the owner's reply",
    )
    until, zone = paused.bot_paused_until, ZoneInfo(ZONE)
    # The owner reads it in their own time zone and language (the pause ends within the
    # hour: today, unless it crosses midnight there).
    assert _bot_state(web, conversation.id) in (
        f"Bot paused until {format_time(until, 'short', tzinfo=zone, locale='en')}",
        f"Bot paused until {format_datetime(until, 'short', tzinfo=zone, locale='en')}",
    )

    # 0 minutes: the next reply from the phone pauses them until someone resumes them.
    assert _settings(web, channel_id, "0").status_code == 303
    owner_answers_from_the_phone(live, "Te espero")
    wait_until(
        lambda: (c := conversation_of(live)) is not None and c.bot_paused_until is None,
        what="a pause without an end",
    )
    assert _bot_state(web, conversation.id) == "Bot paused"
    web.post(f"/inbox/c/{conversation.id}/bot", {"paused": "0"}, follow_redirects=False)
    assert _bot_state(web, conversation.id) == "Bot active"
