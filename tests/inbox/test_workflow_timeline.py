"""Workflows in the inbox: a conversation's timeline shows each run among its events (the
workflow, how it started, every step with its outcome, how the run ended), and "Run a
workflow" in its panel starts one of the workspace's workflows that start by hand.

These run the steps the way the workflow worker does (engine.advance in a transaction of
its own); tests/inbox/test_workflow_live.py drives the same pages with the live worker,
the sandbox's phones and the owner's phone."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time
from sqlalchemy import select

from puente.accounts.models import Membership, User
from puente.automation.workflows import engine
from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import RunStatus, Workflow, WorkflowRun
from puente.automation.workflows.service import (
    do_create_workflow,
    do_publish,
    do_set_enabled,
    do_start_manual_run,
)
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from puente.db.session import Database
from tests.inbox.conftest import NOW, Shop, login
from tests.inbox.helpers import add_conversation, add_message
from tests.inbox.test_query_counts import VIEW_STATEMENTS
from tests.statements import counting
from tests.webclient import WebClient

GREETING: dict[str, Any] = {
    "trigger": {"type": "manual"},
    "steps": [
        {
            "id": "tag",
            "type": "add_tag",
            "title": "Marcar cliente",
            "tag": "seguimiento",
            "next": "hello",
        },
        {
            "id": "hello",
            "type": "send_message",
            "text": "Hola {contact.name|}, te escribe el taller",
        },
    ],
}


def add_workflow(
    db: Database, shop: Shop, definition: dict[str, Any], name: str, *, enabled: bool = True
) -> int:
    with db.unit_of_work(scope=shop.workspace_id) as session:
        workflow = do_create_workflow(
            session, shop.workspace_id, name=name, definition=parse_definition(definition)
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, enabled)
        return workflow.id


def run_now(db: Database, shop: Shop, workflow_id: int, conversation_id: int) -> int:
    """Start the workflow in the conversation and take its steps, as the worker would."""
    with db.unit_of_work(scope=shop.workspace_id) as session:
        workflow = session.get(Workflow, workflow_id)
        conversation = session.get(Conversation, conversation_id)
        assert workflow is not None and conversation is not None
        contact = session.get(Contact, conversation.contact_id)
        assert contact is not None
        run = do_start_manual_run(session, workflow, contact=contact, conversation=conversation)
        engine.advance(session, run)
        return run.id


def conversation(db: Database, shop: Shop, *, window_open: bool = True) -> int:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, window_open=window_open
        )
        add_message(s, c, at=NOW - dt.timedelta(minutes=5), text="Hola, ¿tienen cita hoy?")
        return c.id


def run_html(page: str, run_id: int) -> str:
    start = page.index(f'id="wr-{run_id}"')
    return page[start : page.index("</details>", start)]


def text_of(html: str) -> str:
    """The words a reader sees: tags dropped, spaces folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def runs_of(db: Database) -> list[WorkflowRun]:
    with db.read(unscoped="test") as session:
        found = list(session.scalars(select(WorkflowRun).order_by(WorkflowRun.id)))
        for run in found:
            session.expunge(run)
        return found


def test_a_finished_run_shows_in_the_timeline_with_each_step(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    workflow_id = add_workflow(db, shop, GREETING, "Saludo del taller")
    run_id = run_now(db, shop, workflow_id, cid)

    page = owner_web.get(f"/inbox/c/{cid}").text
    run = run_html(page, run_id)
    shown = text_of(run)
    assert 'data-status="done"' in run
    assert "Workflow “Saludo del taller” started (started by hand)" in shown
    # Each step by its title (or its id when the builder gave none), outcome and detail.
    assert "Marcar cliente · Done: seguimiento" in shown
    assert "hello · Done: Hola Lucía, te escribe el taller" in shown
    assert "The run ended." in shown
    assert f'href="/workflows/{workflow_id}/runs"' in run
    # Among the other events, in time order: after the customer's message.
    assert page.index("Hola, ¿tienen cita hoy?") < page.index(f'id="wr-{run_id}"')
    # The timeline's refresh after a reconnection brings it too.
    assert f'id="wr-{run_id}"' in owner_web.get(f"/inbox/c/{cid}/recent").text


def test_an_agent_sees_the_run_but_not_the_link_to_the_runs_page(
    client: Any, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    workflow_id = add_workflow(db, shop, GREETING, "Saludo del taller")
    run_id = run_now(db, shop, workflow_id, cid)
    ana = login(client, shop.ana_email)
    run = run_html(ana.get(f"/inbox/c/{cid}").text, run_id)
    assert "Saludo del taller" in run
    assert "/workflows/" not in run


def test_a_failed_run_says_which_step_failed_and_why(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop, window_open=False)
    workflow_id = add_workflow(db, shop, GREETING, "Saludo del taller")
    run_id = run_now(db, shop, workflow_id, cid)

    run = run_html(owner_web.get(f"/inbox/c/{cid}").text, run_id)
    shown = text_of(run)
    assert 'data-status="failed"' in run
    assert "Marcar cliente · Done" in shown
    assert "hello · Failed: The 24-hour customer service window is closed" in shown
    assert "Failed: The 24-hour customer service window is closed" in shown


def test_a_conversation_without_runs_shows_none(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    other = conversation(db, shop)
    run_now(db, shop, add_workflow(db, shop, GREETING, "Saludo"), other)
    assert 'data-testid="workflow-run"' not in owner_web.get(f"/inbox/c/{cid}").text


def test_run_a_workflow_offers_the_manual_workflows_that_are_on(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    manual = add_workflow(db, shop, GREETING, "Saludo del taller")
    add_workflow(db, shop, GREETING, "Apagado", enabled=False)
    keyword = {**GREETING, "trigger": {"type": "message_received"}}
    add_workflow(db, shop, keyword, "Por mensaje")

    panel = owner_web.get(f"/inbox/c/{cid}/panel").text
    select_html = panel[panel.index('data-testid="run-workflow-select"') :]
    select_html = select_html[: select_html.index("</select>")]
    assert re.findall(r'<option value="(\d+)">([^<]+)</option>', select_html) == [
        (str(manual), "Saludo del taller")
    ]


def test_run_a_workflow_starts_it_once_and_says_so(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    manual = add_workflow(db, shop, GREETING, "Saludo del taller")
    form = {"workflow_id": str(manual), "key": "k1"}

    started = owner_web.post(f"/inbox/c/{cid}/workflows/run", form, follow_redirects=False)
    assert started.status_code == 303
    assert started.headers["location"] == f"/inbox/c/{cid}?flash=workflow_started"
    (run,) = runs_of(db)
    assert (run.workflow_id, run.conversation_id, run.trigger) == (manual, cid, "manual")
    assert run.status == RunStatus.READY.value  # the worker takes it from here

    page = owner_web.get(started.headers["location"]).text
    assert "The workflow started: its steps show in the timeline." in page
    assert "started by hand" in text_of(run_html(page, run.id))

    # The same form sent twice (a double click) starts no second run.
    again = owner_web.post(f"/inbox/c/{cid}/workflows/run", form, follow_redirects=False)
    assert again.headers["location"] == f"/inbox/c/{cid}?flash=workflow_started"
    assert len(runs_of(db)) == 1


def test_a_workflow_that_does_not_start_by_hand_is_refused(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    keyword = {**GREETING, "trigger": {"type": "message_received"}}
    for workflow_id in (
        add_workflow(db, shop, keyword, "Por mensaje"),
        add_workflow(db, shop, GREETING, "Apagado", enabled=False),
    ):
        refused = owner_web.post(
            f"/inbox/c/{cid}/workflows/run",
            {"workflow_id": str(workflow_id)},
            follow_redirects=False,
        )
        assert refused.headers["location"] == f"/inbox/c/{cid}?flash=workflow_unavailable"
    assert runs_of(db) == []
    page = owner_web.get(f"/inbox/c/{cid}?flash=workflow_unavailable").text
    assert "That workflow cannot be started from a conversation now" in page


def test_only_members_who_may_write_to_the_customer_run_a_workflow(
    client: Any, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    manual = add_workflow(db, shop, GREETING, "Saludo del taller")
    with db.unit_of_work(unscoped="test") as session:
        membership = session.scalars(
            select(Membership).where(Membership.user_id == shop.beto_id)
        ).one()
        membership.permissions = {"conversations.reply": False}
    beto = login(client, shop.beto_email)
    assert 'data-testid="run-workflow"' not in beto.get(f"/inbox/c/{cid}/panel").text
    refused = beto.post(f"/inbox/c/{cid}/workflows/run", {"workflow_id": str(manual)})
    assert refused.status_code == 403
    assert runs_of(db) == []


def test_a_conversation_the_member_cannot_see_is_not_found(
    client: Any, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    with db.unit_of_work(unscoped="test") as session:
        c = session.get(Conversation, cid)
        assert c is not None
        c.assignee_id = shop.beto_id  # Ana (scope: her teams and her own) no longer sees it
    manual = add_workflow(db, shop, GREETING, "Saludo del taller")
    ana = login(client, shop.ana_email)
    refused = ana.post(f"/inbox/c/{cid}/workflows/run", {"workflow_id": str(manual)})
    assert refused.status_code == 404
    assert runs_of(db) == []


def test_the_bot_state_says_until_when_a_pause_lasts(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    zone = ZoneInfo("America/Bogota")
    with db.unit_of_work(unscoped="test") as session:
        owner = session.get(User, shop.owner_id)
        assert owner is not None
        owner.timezone = "America/Bogota"
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    for later in (dt.timedelta(minutes=40), dt.timedelta(days=3)):
        until = now + later
        _pause(db, cid, until)
        # In the viewer's time zone: the hour alone when the pause ends today, with its
        # day when it ends another day.
        if until.astimezone(zone).date() == now.astimezone(zone).date():
            expected = format_time(until, "short", tzinfo=zone, locale="en")
        else:
            expected = format_datetime(until, "short", tzinfo=zone, locale="en")
        assert _bot_state(owner_web, cid) == f"Bot paused until {expected}"

    # A pause whose time has passed is over: the bot is active again.
    _pause(db, cid, now - dt.timedelta(minutes=1))
    assert _bot_state(owner_web, cid) == "Bot active"
    # Paused by someone: until someone resumes it.
    _pause(db, cid, None)
    assert _bot_state(owner_web, cid) == "Bot paused"


def test_resuming_ends_a_pause_that_had_an_end(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    _pause(db, cid, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30))
    assert _bot_state(owner_web, cid).startswith("Bot paused until")
    resumed = owner_web.post(f"/inbox/c/{cid}/bot", {"paused": "0"}, follow_redirects=False)
    assert resumed.status_code == 303
    assert _bot_state(owner_web, cid) == "Bot active"
    with db.read(unscoped="test") as session:
        c = session.get(Conversation, cid)
        assert c is not None
        assert (c.bot_paused, c.bot_paused_until) == (False, None)


def _pause(db: Database, cid: int, until: dt.datetime | None) -> None:
    with db.unit_of_work(unscoped="test") as session:
        c = session.get(Conversation, cid)
        assert c is not None
        c.bot_paused, c.bot_paused_until = True, until


def _bot_state(web: WebClient, cid: int) -> str:
    panel = web.get(f"/inbox/c/{cid}/panel").text
    found = re.search(r'data-testid="bot-state">([^<]*)<', panel)
    assert found, panel
    return found.group(1).strip()


def test_the_view_makes_the_same_statements_for_1_or_12_runs(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    cid = conversation(db, shop)
    workflow_id = add_workflow(db, shop, GREETING, "Saludo del taller")
    run_now(db, shop, workflow_id, cid)
    few = _view_statements(owner_web, db, cid)
    for _ in range(11):
        run_now(db, shop, workflow_id, cid)
    many = _view_statements(owner_web, db, cid)
    # The runs, their steps and the steps' titles: three more than a view without runs.
    assert (few, many) == (VIEW_STATEMENTS + 3, VIEW_STATEMENTS + 3)


def _view_statements(web: WebClient, db: Database, cid: int) -> int:
    with counting(db) as statements:
        page = web.get(f"/inbox/c/{cid}")
    assert page.status_code == 200
    return len(statements)
