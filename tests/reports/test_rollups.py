"""Report facts and rollups, from webhooks and the team's actions, on both engines: what a
supervisor reads in the reports, that a repeated and shuffled replay changes nothing, that
`rebuild` gives the same numbers as the worker, and that the owner's phone and imported
history count where they belong."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import select

from puente.accounts.gate import member_actor
from puente.accounts.models import Membership, User, Workspace
from puente.channels.models import Channel
from puente.config import Settings
from puente.conversations import collab
from puente.conversations.models import Conversation, MessageSource
from puente.db.session import Database
from puente.outbound.outbox.service import do_queue_message
from puente.reports.models import ReportFact, ReportRollup
from puente.reports.queries import Filters, report
from puente.reports.rollup import rebuild
from puente.reports.worker import drain
from puente.runtime import Runtime
from tests.conformance.replay import (
    BUSINESS_NUMBER,
    PHONE_NUMBER_ID,
    WABA_ID,
    load,
    replay,
    setup_runtime,
)
from tests.factories import make_user

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T0 = NOW - dt.timedelta(hours=2)
ANA, BETO = "573001112233", "573004445566"


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    return setup_runtime(settings, db)


def _meta(contacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        "contacts": contacts,
    }


def _envelope(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": field, "value": value}]}],
    }


def customer(wamid: str, sender: str, at: dt.datetime, text: str = "Hola") -> dict[str, Any]:
    value = _meta([{"profile": {"name": f"Cliente {sender[-4:]}"}, "wa_id": sender}])
    value["messages"] = [
        {
            "from": sender,
            "id": wamid,
            "timestamp": str(int(at.timestamp())),
            "type": "text",
            "text": {"body": text},
        }
    ]
    return _envelope("messages", value)


def echo(wamid: str, to: str, at: dt.datetime, text: str = "¡Claro!") -> dict[str, Any]:
    value = _meta([{"wa_id": to}])
    value["message_echoes"] = [
        {
            "from": BUSINESS_NUMBER,
            "to": to,
            "id": wamid,
            "timestamp": str(int(at.timestamp())),
            "type": "text",
            "text": {"body": text},
        }
    ]
    return _envelope("smb_message_echoes", value)


def _the(session: Any, model: type[Any], **where: Any) -> Any:
    return session.scalars(select(model).filter_by(**where)).one()


def webhooks() -> list[dict[str, Any]]:
    return [
        customer("wamid.ana1", ANA, T0),
        echo("wamid.echo1", ANA, T0 + dt.timedelta(seconds=120)),  # the owner answers
        customer("wamid.ana2", ANA, T0 + dt.timedelta(minutes=10)),
        customer("wamid.beto1", BETO, T0 + dt.timedelta(minutes=20)),
        customer("wamid.beto2", BETO, T0 + dt.timedelta(minutes=21)),
        load("history_phase0_chunk1"),  # imported chat history
    ]


def rollups(db: Database) -> list[tuple[Any, ...]]:
    with db.read(unscoped="test") as session:
        rows = session.execute(
            select(
                ReportRollup.metric,
                ReportRollup.day,
                ReportRollup.channel_id,
                ReportRollup.team_id,
                ReportRollup.agent_id,
                ReportRollup.source,
                ReportRollup.label,
                ReportRollup.bucket,
                ReportRollup.count,
                ReportRollup.total,
            ).where(ReportRollup.count != 0)
        ).all()
    return sorted((*r[:-1], round(r[-1], 3)) for r in rows)


def _agent_answers_and_closes(db: Database, wa_id: str) -> int:
    """An agent writes to the customer and closes the conversation; returns the agent."""
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.scalars(select(Workspace)).one()
        agent = make_user(session, workspace, role="agent", name="Camila Rojas")
        target = _by_contact(session, wa_id)
        target.assignee_id = agent.id
        do_queue_message(
            session,
            workspace_id=workspace.id,
            conversation_id=target.id,
            message_type="text",
            content={"body": "Te ayudo"},
            source=MessageSource.AGENT,
            sender_user_id=agent.id,
        )
        membership = _the(session, Membership, user_id=agent.id)
        actor = member_actor(session, agent, membership, workspace.id)
        assert actor is not None
        collab.do_close(session, actor, target)
        return agent.id


def _by_contact(session: Any, wa_id: str) -> Conversation:
    from puente.contacts.models import Contact

    contact = _the(session, Contact, wa_id=wa_id)
    return _the(session, Conversation, contact_id=contact.id)


def _filters(db: Database) -> Filters:
    with db.read(unscoped="test") as session:
        workspace = session.scalars(select(Workspace)).one()
        workspace_id = workspace.id
    today = NOW.date()
    return Filters(workspace_id, dt.date(2024, 1, 1), today + dt.timedelta(days=1))


def _figures(db: Database, key: str) -> dict[str, Any]:
    with db.read(unscoped="test") as session:
        return {f.key: f.value for f in report(session, key, _filters(db)).figures}


def _table(db: Database, key: str, table: str) -> list[list[Any]]:
    with db.read(unscoped="test") as session:
        found = report(session, key, _filters(db))
    return next(t.rows for t in found.tables if t.key == table)


def test_the_reports_count_what_happened_and_a_replay_changes_nothing(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, *webhooks())
    agent_id = _agent_answers_and_closes(db, BETO)
    drain(db)

    conversations = _figures(db, "conversations")
    # Two customers began a conversation; history did not open any (its chats were older).
    assert conversations["new"] == 2
    assert conversations["resolved"] == 1

    responses = _figures(db, "responses")
    by_source = {row[0]: row for row in _table(db, "responses", "first_response_by_source")}
    # Ana was answered from the owner's phone after 120 s; Beto by the agent.
    assert set(by_source) == {"business_app", "agent"}
    assert by_source["business_app"][1] == 1
    assert by_source["business_app"][2] == pytest.approx(120, rel=0.06)
    assert responses["first_response_median"] is not None

    sources = dict((row[0], row[1]) for row in _table(db, "messages", "by_source"))
    assert sources["customer"] == 4
    assert sources["business_app"] == 1
    assert sources["agent"] == 1
    assert sources["history"] > 0

    leaderboard = {row[0]: row for row in _table(db, "leaderboard", "leaderboard")}
    assert "business_app" in leaderboard  # the owner's phone is a row of its own
    assert leaderboard["Camila Rojas"][1] == 1  # resolved one
    assert leaderboard["business_app"][2] == pytest.approx(120, rel=0.06)

    # One number's leaderboard (the only number here) is the whole one.
    with db.read(unscoped="test") as session:
        number = session.scalars(select(Channel.id)).one()
        whole = _filters(db)
        one = Filters(whole.workspace_id, whole.start, whole.end, channel_ids=(number,))
        by_number = report(session, "leaderboard", one).tables[0].rows
    assert sorted(map(tuple, by_number)) == sorted(map(tuple, leaderboard.values()))

    costs = _figures(db, "costs")
    assert costs["free"] == 1  # what the owner's phone sent is free
    assert costs["billable"] == 0

    before = rollups(db)
    facts_before = _fact_count(db)
    # The same webhooks again, shuffled and each twice: nothing is stored twice, so
    # nothing is counted twice.
    again = webhooks() * 2
    random.Random(7).shuffle(again)
    replay(runtime, *again)
    drain(db)
    assert rollups(db) == before
    assert _fact_count(db) == facts_before

    # Summing the facts again from scratch gives the worker's numbers.
    with db.unit_of_work(unscoped="test") as session:
        workspace_id = session.scalars(select(Workspace.id)).one()
        rebuild(session, workspace_id)
    assert rollups(db) == before
    assert agent_id


def _fact_count(db: Database) -> int:
    with db.read(unscoped="test") as session:
        return len(session.scalars(select(ReportFact.id)).all())


def test_rebuild_since_a_day_keeps_the_days_before(runtime: Runtime, db: Database) -> None:
    old = NOW - dt.timedelta(days=3)
    replay(runtime, customer("wamid.old", ANA, old), customer("wamid.new", BETO, T0))
    drain(db)
    before = rollups(db)
    with db.unit_of_work(unscoped="test") as session:
        workspace_id = session.scalars(select(Workspace.id)).one()
        # A rebuild from yesterday leaves three days ago alone and sums today again.
        read = rebuild(session, workspace_id, since=NOW.date() - dt.timedelta(days=1))
    assert read >= 1
    assert rollups(db) == before


def test_history_never_makes_response_times(runtime: Runtime, db: Database) -> None:
    replay(runtime, *[load(n) for n in ("history_phase0_chunk1", "history_phase0_chunk2")])
    drain(db)
    assert _figures(db, "conversations")["new"] == 0
    assert _figures(db, "responses")["first_response_median"] is None
    sources = dict((row[0], row[1]) for row in _table(db, "messages", "by_source"))
    assert set(sources) == {"history"}


def test_an_agent_leaving_a_status_counts_its_time(runtime: Runtime, db: Database) -> None:
    from puente.accounts.service import do_update_profile

    with db.unit_of_work(unscoped="test") as session:
        workspace = session.scalars(select(Workspace)).one()
        agent = make_user(session, workspace, role="agent", name="Andrés Gómez")
        do_update_profile(session, agent, availability="online")
        agent.availability_since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    with db.unit_of_work(unscoped="test") as session:
        agent = session.get(User, agent.id)
        assert agent is not None
        do_update_profile(session, agent, availability="away")
    drain(db)
    rows = {row[0]: row for row in _table(db, "users", "by_agent")}
    assert rows["Andrés Gómez"][1] == pytest.approx(1800, abs=60)  # online for 30 minutes


def test_the_command_line_rebuilds_and_prints_a_report(
    runtime: Runtime, db: Database, settings: Settings
) -> None:
    from tests.command import environment, run_puente

    replay(
        runtime, customer("wamid.c1", ANA, T0), echo("wamid.c2", ANA, T0 + dt.timedelta(minutes=2))
    )
    drain(db)
    before = rollups(db)
    with db.read(unscoped="test") as session:
        slug = session.scalars(select(Workspace.slug)).one()
    env = environment(settings)
    ran = run_puente(env, "reports", "rebuild", "--workspace", slug)
    assert ran.returncode == 0, ran.stderr
    assert "rebuilt the rollups from" in ran.stdout
    assert rollups(db) == before
    shown = run_puente(env, "reports", "show", "responses", "--workspace", slug)
    assert shown.returncode == 0, shown.stderr
    assert "first_response_median: 12" in shown.stdout  # about 120 s, from its 10 % bin
    bad = run_puente(env, "reports", "rebuild", "--workspace", slug, "--since", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("refused: --since must be a date")
    unknown = run_puente(env, "reports", "show", "sales", "--workspace", slug)
    assert unknown.returncode == 2 and "no report 'sales'" in unknown.stderr


def test_contacts_count_by_where_they_came_from(runtime: Runtime, db: Database) -> None:
    # The owner's address book synced from the Business app, then a customer who writes.
    replay(runtime, "state_sync_add", customer("wamid.new1", BETO, T0))
    replay(runtime, "state_sync_add")  # the same sync again creates nobody
    drain(db)
    by_source = dict((row[0], row[1]) for row in _table(db, "contacts", "by_source"))
    assert by_source.get("business_app", 0) >= 1
    assert by_source["whatsapp"] == 1
    assert _figures(db, "contacts")["contacts_new"] == sum(by_source.values())


def test_a_range_of_whole_weeks_and_odd_days_sums_the_same_bins(db: Database) -> None:
    """Histograms over a range read whole weeks from the weekly rows and the edges from
    the daily ones: the same figures as adding up every day."""
    from puente.reports.facts import Fact, Kind, record
    from puente.reports.queries import durations, sums
    from tests.factories import make_workspace

    rng = random.Random(3)
    with db.unit_of_work(unscoped="test") as session:
        workspace_id = make_workspace(session).id
        for day in range(40):
            for _ in range(rng.randint(0, 6)):
                at = NOW - dt.timedelta(days=day, minutes=rng.randint(0, 600))
                record(
                    session,
                    Fact(
                        kind=Kind.RESPONSE.value,
                        workspace_id=workspace_id,
                        at=at,
                        source="agent",
                        seconds=rng.lognormvariate(5, 1.5),
                    ),
                )
    drain(db)
    today = NOW.date()
    with db.read(unscoped="test") as session:
        for start_back, end_back in ((38, 2), (30, 0), (9, 3), (5, 1)):
            f = Filters(
                workspace_id,
                today - dt.timedelta(days=start_back),
                today - dt.timedelta(days=end_back),
            )
            weekly = durations(session, f, "response_time")[()]
            daily = sums(session, f, ["response_time"], ["day", "bucket"], suffix="~")
            count = sum(c for c, _ in daily.values())
            assert weekly.count == count
            assert weekly.average == pytest.approx(sum(t for _, t in daily.values()) / count)
