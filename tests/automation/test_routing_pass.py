"""The routing pass against a real database: round robin takes turns whichever process
routes (the turn is a row, not a process's memory), least busy picks the emptiest agent,
capacity holds and the overflow waits in the team's queue, away and offline agents are
never picked, and two workers routing at once assign each conversation exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from puente.accounts.models import User, Workspace
from puente.automation.routing.models import TeamRouting
from puente.automation.routing.worker import route_step
from puente.config import Settings
from puente.conversations.models import Conversation, ConversationEvent, Notification
from puente.db.session import Database
from tests.factories import make_channel, make_team, make_user, make_workspace
from tests.inbox.conftest import NOW
from tests.inbox.helpers import add_conversation
from tests.waiting import wait_until


@dataclass
class Team:
    workspace_id: int
    channel_id: int
    team_id: int
    agents: list[int]  # by user id, the order round robin goes in


def _team(
    db: Database,
    strategy: str,
    *,
    agents: int = 3,
    capacity: int | None = None,
    availability: str = "online",
) -> Team:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        members = [make_user(session, ws, name=f"Agente {i}") for i in range(agents)]
        for member in members:
            member.availability = availability
        team = make_team(session, ws, "Soporte", members)
        session.add(
            TeamRouting(team_id=team.id, workspace_id=ws.id, strategy=strategy, capacity=capacity)
        )
        channel = make_channel(session, ws)
        return Team(ws.id, channel.id, team.id, sorted(m.id for m in members))


def _queue(db: Database, team: Team, n: int = 1, name: str = "Cliente") -> list[int]:
    """`n` conversations waiting in the team's queue, oldest first."""
    with db.unit_of_work(unscoped="test") as session:
        return [
            add_conversation(
                session,
                team.workspace_id,
                team.channel_id,
                f"{name} {i}",
                at=NOW,
                team_id=team.team_id,
            ).id
            for i in range(n)
        ]


def _assignees(db: Database, conversation_ids: list[int]) -> list[int | None]:
    with db.read(unscoped="test") as session:
        found = dict(
            session.execute(
                select(Conversation.id, Conversation.assignee_id).where(
                    Conversation.id.in_(conversation_ids)
                )
            ).all()
        )
    return [found[c] for c in conversation_ids]


def _give(db: Database, team: Team, user_id: int, n: int, status: str = "open") -> None:
    """`n` conversations already assigned to `user_id`."""
    with db.unit_of_work(unscoped="test") as session:
        for i in range(n):
            add_conversation(
                session,
                team.workspace_id,
                team.channel_id,
                f"Ya asignado {user_id}-{i}",
                at=NOW,
                assignee_id=user_id,
                status=status,
            )


def _set_availability(db: Database, user_id: int, availability: str) -> None:
    with db.unit_of_work(unscoped="test") as session:
        user = session.get(User, user_id)
        assert user is not None
        user.availability = availability


def _worker_process(settings: Settings, db: Database) -> subprocess.Popen[str]:
    """`puente worker`: its own process, its own memory, the same database."""
    env = dict(
        os.environ,
        PUENTE_DATA_DIR=str(settings.data_dir),
        PUENTE_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        PUENTE_WORKER_POLL_SECONDS="60" if db.is_postgres else "0.05",
    )
    if settings.database_url:
        env["PUENTE_DATABASE_URL"] = settings.database_url
    puente = Path(sys.executable).parent / "puente"
    worker = subprocess.Popen(
        [str(puente), "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    assert "running" in worker.stdout.readline()
    return worker


def test_round_robin_gives_three_online_agents_turns_across_processes(
    settings: Settings, db: Database
) -> None:
    team = _team(db, "round_robin")
    a, b, c = team.agents

    first = _queue(db, team)
    assert route_step(db)
    assert _assignees(db, first) == [a]

    # The next turn is taken by another process: `puente worker`, woken by NOTIFY on
    # PostgreSQL, polling on SQLite.
    worker = _worker_process(settings, db)
    try:
        second = _queue(db, team)
        with db.unit_of_work(unscoped="test") as session:
            from puente.jobs import ROUTING

            ROUTING.wake_after_commit(session)
        wait_until(lambda: _assignees(db, second) != [None], what="the worker process's turn")
    finally:
        worker.send_signal(signal.SIGINT)
        _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert _assignees(db, second) == [b]

    # Back in this process, the turns go on where the other process left them.
    rest = _queue(db, team, 4)
    assert route_step(db)
    assert _assignees(db, rest) == [c, a, b, c]
    with db.read(unscoped="test") as session:
        routing = session.get(TeamRouting, team.team_id)
        assert routing is not None and routing.last_user_id == c


def test_round_robin_skips_agents_who_are_away_or_offline(db: Database) -> None:
    team = _team(db, "round_robin", agents=4)
    a, away, offline, d = team.agents
    _set_availability(db, away, "away")
    _set_availability(db, offline, "offline")
    waiting = _queue(db, team, 5)
    assert route_step(db)
    assert _assignees(db, waiting) == [a, d, a, d, a]


def test_least_busy_picks_the_agent_with_fewest_open_conversations(db: Database) -> None:
    team = _team(db, "least_busy")
    a, b, c = team.agents
    _give(db, team, a, 3)
    _give(db, team, b, 1)
    _give(db, team, c, 2)
    # Closed conversations are no load.
    _give(db, team, b, 5, status="resolved")
    waiting = _queue(db, team, 4)
    assert route_step(db)
    # b has 1 and gets the first; then b and c tie at 2 and take turns (c after b), and
    # at 3 each all three tie: the turn after b is c's.
    assert _assignees(db, waiting) == [b, c, b, c]


def test_capacity_holds_and_the_overflow_waits_in_the_queue(db: Database) -> None:
    team = _team(db, "round_robin", agents=2, capacity=2)
    a, b = team.agents
    # Another team of the workspace routes too (its settings must not count twice).
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, team.workspace_id)
        assert ws is not None
        ventas = make_team(session, ws, "Ventas", [])
        session.add(
            TeamRouting(team_id=ventas.id, workspace_id=ws.id, strategy="least_busy", capacity=9)
        )
    _give(db, team, a, 1)
    waiting = _queue(db, team, 5)
    assert route_step(db)
    # a already holds one, so a takes one more and b two; two wait.
    assert _assignees(db, waiting) == [a, b, b, None, None]
    assert not route_step(db)  # nobody has room: nothing moves, nothing is locked

    # a closes one: the longest-waiting conversation in the queue is theirs.
    with db.unit_of_work(unscoped="test") as session:
        done = session.get(Conversation, waiting[0])
        assert done is not None
        done.status = "resolved"
    assert route_step(db)
    assert _assignees(db, waiting) == [a, b, b, a, None]


def test_nobody_online_leaves_the_queue_waiting_until_someone_comes_online(
    db: Database,
) -> None:
    team = _team(db, "least_busy", agents=2, availability="away")
    waiting = _queue(db, team, 2)
    assert not route_step(db)
    assert _assignees(db, waiting) == [None, None]
    _set_availability(db, team.agents[1], "online")
    assert route_step(db)
    assert _assignees(db, waiting) == [team.agents[1], team.agents[1]]


def test_manual_teams_and_conversations_outside_the_queue_are_left_alone(db: Database) -> None:
    team = _team(db, "manual")
    waiting = _queue(db, team, 2)
    routed = _team(db, "round_robin")
    with db.unit_of_work(unscoped="test") as session:
        pending = add_conversation(
            session,
            routed.workspace_id,
            routed.channel_id,
            "Pendiente",
            at=NOW,
            status="pending",
            team_id=routed.team_id,
        ).id
        no_team = add_conversation(
            session, routed.workspace_id, routed.channel_id, "Sin equipo", at=NOW
        ).id
    assert not route_step(db)
    assert _assignees(db, [*waiting, pending, no_team]) == [None, None, None, None]


def test_an_assignment_by_routing_is_on_the_timeline_and_notifies_the_agent(
    db: Database,
) -> None:
    team = _team(db, "round_robin", agents=1)
    (conversation,) = _queue(db, team)
    assert route_step(db)
    with db.read(unscoped="test") as session:
        event = session.scalars(
            select(ConversationEvent).where(ConversationEvent.conversation_id == conversation)
        ).one()
        notice = session.scalars(select(Notification)).one()
        assert event.kind == "assigned" and event.actor_id is None
        assert event.data["to_user_id"] == team.agents[0]
        assert event.data["team_name"] == "Soporte" and event.data["strategy"] == "round_robin"
        assert (notice.user_id, notice.kind, notice.conversation_id) == (
            team.agents[0],
            "assigned",
            conversation,
        )


def test_two_workers_at_once_assign_each_conversation_exactly_once(
    settings: Settings, db: Database
) -> None:
    team = _team(db, "round_robin", agents=3, capacity=10)
    waiting = _queue(db, team, 40)
    # Two workers with their own engines and connections, as two processes would have.
    engines = [Database(settings.sqlalchemy_url()) for _ in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(own: Database) -> None:
        try:
            start.wait()
            while route_step(own):
                pass
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert errors == []
    assignees = _assignees(db, waiting)
    counts = Counter(assignees)
    # 30 fit (3 agents x 10); each got exactly its capacity, in turn, nobody twice.
    assert counts == {team.agents[0]: 10, team.agents[1]: 10, team.agents[2]: 10, None: 10}
    assert assignees[:30] == team.agents * 10
    with db.read(unscoped="test") as session:
        assigned_events = session.scalars(
            select(ConversationEvent.conversation_id).where(ConversationEvent.kind == "assigned")
        ).all()
    assert sorted(assigned_events) == sorted(waiting[:30])


def test_another_workspace_is_never_touched(db: Database) -> None:
    team = _team(db, "round_robin")
    other = _team(db, "manual")
    mine = _queue(db, team)
    theirs = _queue(db, other)
    assert route_step(db)
    assert _assignees(db, mine) == [team.agents[0]]
    assert _assignees(db, theirs) == [None]
    with db.read(unscoped="test") as session:
        assert session.get(Workspace, other.workspace_id) is not None
