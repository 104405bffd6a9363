"""The ready-made workflows at work, end to end: each is installed from the library,
published and switched on through the REST API, and customers on the sandbox's phones
see what it does, on a live Puente with its workers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from puente.accounts.gate import Actor
from puente.accounts.models import Workspace
from puente.automation.workflows.library import do_install, text
from puente.automation.workflows.models import RunStatus, WorkflowRun
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.collab import do_assign, do_close, do_set_bot_paused
from puente.conversations.models import Conversation
from puente.db.base import utcnow
from tests.automation.test_workflow_runs import customer_writes, phone_received, runs
from tests.channels.conftest import Coex, make_coex  # noqa: F401 (a fixture)
from tests.factories import make_team, make_user
from tests.waiting import wait_until

LUCIA, PEDRO, RAUL = "573001110001", "573001110002", "573001110003"


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    live = make_coex()
    live.onboard(import_history=False)
    return live


def staff(live: Coex, *, online: bool = True) -> tuple[int, int]:
    """Ana Pérez in the team Soporte (routing: round robin); returns her id and the team's."""
    with live.db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, live.workspace_id)
        assert workspace is not None
        ana = make_user(session, workspace, name="Ana Pérez", email="ana@tienda.example")
        ana.availability = "online" if online else "offline"
        team = make_team(session, workspace, "Soporte", [ana])
        ids = ana.id, team.id
    res = live.api.put(f"/teams/{ids[1]}/routing", json={"strategy": "round_robin"})
    assert res.status_code == 200, res.text
    return ids


def switch_on(live: Coex, key: str) -> int:
    """Install `key` from the library (Spanish), then publish and enable it by API."""
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        workflow_id = do_install(session, live.workspace_id, key, language="es").id
    for action in ("publish", "enable"):
        res = live.api.post(f"/workflows/{workflow_id}/{action}")
        assert res.status_code == 200, res.text
    return workflow_id


def conversation_of(live: Coex, wa_id: str) -> Conversation:
    def found() -> Conversation | None:
        with live.db.read(unscoped="test") as session:
            conversation = session.scalar(
                select(Conversation)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.wa_id == wa_id)
            )
            if conversation is not None:
                session.expunge(conversation)
            return conversation

    conversation: Conversation = wait_until(found, what=f"{wa_id}'s conversation")
    return conversation


def run_of(live: Coex, status: str) -> WorkflowRun:
    run: WorkflowRun = wait_until(
        lambda: next((r for r in runs(live) if r.status == status), None),
        what=f"a run {status}",
    )
    return run


def done(live: Coex, count: int) -> None:
    wait_until(
        lambda: [r.status for r in runs(live)].count(RunStatus.DONE.value) == count,
        what=f"{count} runs done",
    )


def set_hours(live: Coex, week: dict[str, Any]) -> None:
    with live.db.read(unscoped="test") as session:
        channel_id = session.scalars(
            select(Channel.id).where(Channel.workspace_id == live.workspace_id)
        ).one()
    res = live.api.put(
        f"/channels/{channel_id}/business-hours", json={"time_zone": "UTC", "week": week}
    )
    assert res.status_code == 200, res.text


ALWAYS_OPEN = {day: [{"start": "00:00", "end": "24:00"}] for day in ("mon", "tue", "wed", "thu")}
ALWAYS_OPEN |= {day: [{"start": "00:00", "end": "24:00"}] for day in ("fri", "sat", "sun")}


def test_out_of_hours_and_all_agents_busy_answer_by_the_numbers_hours(live: Coex) -> None:
    switch_on(live, "out_of_hours")
    switch_on(live, "agents_busy")
    set_hours(live, {})  # closed every day
    customer_writes(live, LUCIA, "Hola, ¿están?")
    closed = text("closed", "es").replace("{contact.name|}", "Lucía")
    wait_until(lambda: phone_received(live, LUCIA) == [closed], what="the out-of-hours reply")
    done(live, 2)  # "all busy" ran too, and its branch found the number closed

    set_hours(live, ALWAYS_OPEN)
    customer_writes(live, PEDRO, "Buenas tardes")
    wait_until(lambda: phone_received(live, PEDRO) == [text("busy", "es")], what="the busy message")
    done(live, 3)
    assert len(runs(live)) == 3  # out-of-hours is not started while the number is open
    assert phone_received(live, LUCIA) == [closed]


def test_auto_assign_for_sales_and_for_support(live: Coex) -> None:
    ana, team = staff(live)
    sales = switch_on(live, "auto_assign_sales")
    customer_writes(live, LUCIA, "Quiero comprar")
    wait_until(lambda: conversation_of(live, LUCIA).assignee_id == ana, what="Lucía assigned")
    assert conversation_of(live, LUCIA).team_id == team
    assert phone_received(live, LUCIA) == []  # sales assigns without a word

    assert live.api.post(f"/workflows/{sales}/disable").status_code == 200
    switch_on(live, "auto_assign_support")
    customer_writes(live, PEDRO, "No me llega mi pedido")
    wait_until(lambda: phone_received(live, PEDRO) == [text("received", "es")], what="the receipt")
    wait_until(lambda: conversation_of(live, PEDRO).assignee_id == ana, what="Pedro assigned")
    # A second message in the same conversation is not a first one: nothing more.
    customer_writes(live, PEDRO, "¿Hola?")
    wait_until(lambda: conversation_of(live, PEDRO).unread_count >= 2, what="the second message")
    done(live, 2)
    assert len(runs(live)) == 2


def test_high_volume_follows_up_only_while_nobody_took_the_conversation(live: Coex) -> None:
    ana, team = staff(live, online=False)  # nobody available: the conversation waits
    switch_on(live, "auto_assign_high_volume")
    customer_writes(live, LUCIA, "Necesito ayuda")
    waiting = run_of(live, RunStatus.WAITING.value)
    assert waiting.wake_at is not None
    assert waiting.wake_at - utcnow() > dt.timedelta(minutes=9)
    queued = conversation_of(live, LUCIA)
    assert (queued.team_id, queued.assignee_id) == (team, None)

    # Ten minutes later (the wait brought forward), still nobody has it: a follow-up.
    wake_now(live, waiting.id)
    wait_until(
        lambda: phone_received(live, LUCIA) == [text("still_waiting", "es")],
        what="the follow-up",
    )

    # Pedro's conversation is taken meanwhile: no follow-up for him.
    customer_writes(live, PEDRO, "Hola")
    second = wait_until(
        lambda: next((r for r in runs(live) if r.id != waiting.id and r.status == "waiting"), None),
        what="Pedro's run waiting",
    )
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        taken = session.get(Conversation, conversation_of(live, PEDRO).id)
        assert taken is not None
        do_assign(session, Actor(workspace_id=live.workspace_id), taken, assignee_id=ana)
    wake_now(live, second.id)
    done(live, 2)
    steps = [s["step_id"] for s in live.api.get(f"/workflow-runs/{second.id}").json()["steps"]]
    assert steps[-1] == "still_unassigned" and "follow_up" not in steps
    assert phone_received(live, PEDRO) == []


def wake_now(live: Coex, run_id: int) -> None:
    with live.db.unit_of_work(unscoped="test") as session:
        session.execute(
            update(WorkflowRun).where(WorkflowRun.id == run_id).values(wake_at=utcnow())
        )


def test_assign_to_an_agent_and_message_on_assignment_started_by_api(live: Coex) -> None:
    ana, _team = staff(live)
    by_hand = switch_on(live, "assign_to_agent")
    introduce = switch_on(live, "message_on_assignment")
    customer_writes(live, LUCIA, "Hola")
    customer_writes(live, PEDRO, "Hola")
    lucia, pedro = conversation_of(live, LUCIA), conversation_of(live, PEDRO)

    started = live.api.post(f"/workflows/{by_hand}/runs", json={"contact_id": lucia.contact_id})
    assert started.status_code == 201, started.text
    wait_until(lambda: conversation_of(live, LUCIA).assignee_id == ana, what="Lucía assigned")
    assert phone_received(live, LUCIA) == []

    res = live.api.post(f"/workflows/{introduce}/runs", json={"phone": "+" + PEDRO})
    assert res.status_code == 201, res.text
    assert res.json()["conversation_id"] == pedro.id
    wait_until(
        lambda: phone_received(live, PEDRO) == ["Ahora estás hablando con Ana Pérez."],
        what="the agent's introduction",
    )
    assert conversation_of(live, PEDRO).assignee_id == ana
    path = f"/workflow-runs/{res.json()['id']}"
    detail = wait_until(
        lambda: (d := live.api.get(path).json())["status"] == "done" and d, what="the run done"
    )
    assert [(s["step_id"], s["outcome"]) for s in detail["steps"]] == [
        ("assign", "ok"),
        ("introduce", "ok"),
    ]


def test_closing_a_conversation_turns_its_bot_back_on(live: Coex) -> None:
    switch_on(live, "close_and_bot_on")
    customer_writes(live, LUCIA, "Hola")
    conversation_id = conversation_of(live, LUCIA).id
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        actor = Actor(workspace_id=live.workspace_id)
        do_set_bot_paused(session, actor, conversation, paused=True)
    assert conversation_of(live, LUCIA).bot_paused is True
    # An agent closes it, as the inbox's Close button does.
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        do_close(session, Actor(workspace_id=live.workspace_id), conversation)
    wait_until(lambda: conversation_of(live, LUCIA).bot_paused is False, what="the bot back on")
    done(live, 1)


def tap(live: Coex, wa_id: str, option_id: str, title: str) -> None:
    reply = {"type": "button_reply", "button_reply": {"id": option_id, "title": title}}
    customer_writes(live, wa_id, "", type="interactive", payload=reply)


def test_the_menu_routes_by_the_customers_answer(live: Coex) -> None:
    ana, team = staff(live)
    switch_on(live, "menu_routing")
    menu = text("menu", "es") + " ['Ventas', 'Soporte', 'Otro']"

    customer_writes(live, LUCIA, "Hola")
    wait_until(lambda: phone_received(live, LUCIA) == [menu], what="Lucía's menu")
    tap(live, LUCIA, "support", "Soporte")
    wait_until(lambda: conversation_of(live, LUCIA).assignee_id == ana, what="Lucía assigned")
    assert conversation_of(live, LUCIA).team_id == team

    customer_writes(live, PEDRO, "Hola")
    wait_until(lambda: phone_received(live, PEDRO) == [menu], what="Pedro's menu")
    customer_writes(live, PEDRO, "otro")  # typing the option's text is an answer too
    wait_until(
        lambda: phone_received(live, PEDRO) == [menu, text("tell_us", "es")],
        what="the 'other' branch",
    )
    assert conversation_of(live, PEDRO).assignee_id is None

    customer_writes(live, RAUL, "Hola")
    wait_until(lambda: phone_received(live, RAUL) == [menu], what="Raúl's menu")
    customer_writes(live, RAUL, "no sé")
    wait_until(
        lambda: phone_received(live, RAUL)[-1].startswith(text("menu_retry", "es")),
        what="the question asked again",
    )
    customer_writes(live, RAUL, "tampoco")
    wait_until(
        lambda: phone_received(live, RAUL)[-1] == text("not_understood", "es"),
        what="the no-valid-answer branch",
    )
    wait_until(lambda: conversation_of(live, RAUL).assignee_id == ana, what="Raúl assigned")
    done(live, 3)
