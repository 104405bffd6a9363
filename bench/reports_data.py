"""The data set of bench/reports: bench/inbox's data set (its own `build`) spread over 90
days, in a workspace in America/Bogota whose numbers keep business hours, and the report
facts the real code paths would have recorded for it, bulk-inserted with Core.

The facts come from walking each conversation's stored messages as reports.facts does:
opened (new, or reopened after a close), assigned and reassigned, each response and the
cycle's first response, resolved, CSAT; the owner's phone answering as business_app with
no agent; every message by its source (one conversation in 20 is imported history:
messages only); what Meta bills per status (free in the window, a few billable
templates, the owner's phone free); a few broadcasts, contacts, consent, the agents'
presence. The inbox data set's messages are 7 minutes apart, so durations are drawn from
log-normal distributions instead (minutes, with nights and days in the tail).

At this data set's pace (about 8 messages a minute) every message is processed in a
transaction of its own, and `reports.facts.folded` only folds facts of one transaction:
a fact row per message. `fold=True` folds the countable facts per quarter hour across
the whole data set instead (the best case, as under heavy load).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import time
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, insert, select, update

from inbox import NOW, build
from puente.accounts.models import User, Workspace
from puente.automation.hours import DAYS, business_hours_json, parse_business_hours
from puente.channels.models import Channel
from puente.config import Settings
from puente.conversations.models import Conversation, Message
from puente.db.models import Base
from puente.db.session import Database
from puente.reports.facts import Fact, Kind, folded
from puente.reports.models import CsatSurvey, ReportFact
from puente.runtime import Runtime

ZONE = "America/Bogota"
CHUNK = 20_000
APP_SECRET = "bench-app-secret"


def log(line: str = "") -> None:
    print(line, flush=True)


@dataclass
class World:
    runtime: Runtime
    db: Database
    settings: Settings
    workspace_id: int
    channel_ids: list[int]
    team_ids: list[int]
    agent_ids: list[int]
    team_of: dict[int, int]  # agent -> team
    owner_id: int
    phone_number_id: str
    display: str


# A shop open long hours: 7 to 21 Monday to Saturday, 9 to 14 on Sunday. The inbox data
# set's messages come at any time of day; waits over the nights shrink in business hours.
HOURS = {
    "time_zone": ZONE,
    "week": {
        day: [
            {"start": "07:00", "end": "21:00"}
            if day != "sun"
            else {"start": "09:00", "end": "14:00"}
        ]
        for day in DAYS
    },
}


def settings_for(data_dir: Path, url: str | None) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=SecretStr(Fernet.generate_key().decode()),
        session_secret=SecretStr("bench"),
        meta_app_secret=SecretStr(APP_SECRET),
        run_workers=False,
        log_level="WARNING",
    )


def build_world(args: argparse.Namespace, tmp: Path) -> World:
    settings = settings_for(tmp / "dataset", args.postgres)
    runtime = Runtime.from_settings(settings)
    db = runtime.db
    if db.is_postgres:
        Base.metadata.drop_all(db.engine)
    Base.metadata.create_all(db.engine)
    engine = "PostgreSQL" if db.is_postgres else "SQLite"
    log(f"data set: {args.messages:,} messages in {args.conversations:,} conversations on {engine}")
    t = time.perf_counter()
    # 89 days back from now, plus today: the 90 local days a 90-day report asks for.
    made = build(db, args.conversations, args.messages, args.agents, days=89)
    log(f"  bench/inbox's build: {time.perf_counter() - t:.0f} s")
    with db.engine.begin() as conn:
        conn.execute(update(Workspace).values(timezone=ZONE))
        hours = business_hours_json(parse_business_hours(HOURS))
        conn.execute(update(Channel).values(settings={"business_hours": hours}))
        owner = conn.scalar(select(func.min(User.id)))
    agents = made["agent_ids"]
    teams = made["team_ids"]
    return World(
        runtime=runtime,
        db=db,
        settings=settings,
        workspace_id=made["workspace_id"],
        channel_ids=made["channel_ids"],
        team_ids=teams,
        agent_ids=agents,
        team_of={a: teams[n % len(teams)] for n, a in enumerate(agents)},
        owner_id=int(owner or 0),
        phone_number_id=made["phone_number_id"],
        display=made["display"],
    )


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def wait_seconds(rng: random.Random) -> float:
    """How long a customer waits for an answer: minutes, sometimes a night or a weekend."""
    seconds = lognormal(rng, 240, 1.5)
    if rng.random() < 0.05:
        seconds += rng.uniform(10, 60) * 3600
    return seconds


class FactWriter:
    """Writes facts as reports.facts would: each transaction's facts through `folded`
    (identical countable ones in one row), or, with `fold`, all of them folded at once."""

    def __init__(self, db: Database, fold: bool) -> None:
        self.db = db
        self.fold = fold
        self.rows: list[dict[str, Any]] = []
        self.merged: dict[Fact, int] = defaultdict(int)
        self.written = 0

    def tx(self, items: list[Fact]) -> None:
        for fact in folded(items):
            if self.fold and fact.seconds is None:
                self.merged[replace(fact, count=1)] += fact.count
            else:
                self.rows.append(self.row(fact))
        if len(self.rows) >= CHUNK:
            self.flush()

    @staticmethod
    def row(f: Fact) -> dict[str, Any]:
        return {
            "workspace_id": f.workspace_id,
            "kind": f.kind,
            "at": f.at,
            "channel_id": f.channel_id,
            "conversation_id": f.conversation_id,
            "team_id": f.team_id,
            "agent_id": f.agent_id,
            "source": f.source[:24],
            "label": f.label[:64],
            "count": f.count,
            "seconds": f.seconds,
            "rolled_up": False,
        }

    def flush(self) -> None:
        if self.rows:
            with self.db.engine.begin() as conn:
                conn.execute(insert(ReportFact), self.rows)
            self.written += len(self.rows)
            self.rows = []

    def close(self) -> None:
        for fact, count in self.merged.items():
            self.rows.append(self.row(replace(fact, count=count)))
            if len(self.rows) >= CHUNK:
                self.flush()
        self.merged.clear()
        self.flush()


@dataclass
class Cycle:
    """What reports.facts keeps of a conversation while the real code runs."""

    opened_at: dt.datetime | None = None
    first_response_at: dt.datetime | None = None
    waiting_since: dt.datetime | None = None
    assignee: int = 0
    began: bool = False
    closed: bool = False


class Simulation:
    """The facts the real code paths record for a conversation, message by message."""

    def __init__(self, world: World, writer: FactWriter, seed: int = 17) -> None:
        self.w = world
        self.out = writer
        self.rng = random.Random(seed)
        self.by_team: dict[int, list[int]] = defaultdict(list)
        for agent, team in world.team_of.items():
            self.by_team[team].append(agent)
        self.surveys: list[dict[str, Any]] = []

    def fact(self, kind: Kind, at: dt.datetime, conv: Any, **dims: Any) -> Fact:
        dims.setdefault("team_id", conv.team_id or 0)
        return Fact(
            kind=kind.value,
            workspace_id=self.w.workspace_id,
            at=at,
            channel_id=conv.channel_id,
            **dims,
        )

    def history(self, conv: Any, messages: list[tuple[str, str, dt.datetime]]) -> None:
        """An imported chat: its messages count under history and nowhere else."""
        for n, (_, kind, at) in enumerate(messages):
            tx = [self.fact(Kind.MESSAGE, at, conv, source="history", label=kind)]
            if n == 0:
                tx.append(self.fact(Kind.CONTACT, at, conv, team_id=0, source="history"))
            self.out.tx(tx)

    def conversation(self, conv: Any, messages: list[tuple[str, str, dt.datetime]]) -> None:
        rng, c = self.rng, Cycle()
        ids = {"conversation_id": conv.id}
        reopen_after = 5 if conv.status == "resolved" and rng.random() < 0.1 else -1
        reassign_at = rng.randrange(len(messages)) if rng.random() < 0.08 else -1
        team_agents = self.by_team.get(conv.team_id or 0) or self.w.agent_ids
        last = messages[-1][2]
        for n, (source, kind, at) in enumerate(messages):
            if n == reassign_at and c.assignee:
                others = [a for a in team_agents if a != c.assignee] or self.w.agent_ids
                c.assignee = rng.choice(others)
                seconds = (at - c.waiting_since).total_seconds() if c.waiting_since else None
                self.out.tx(
                    [
                        self.fact(
                            Kind.ASSIGNED, at, conv, agent_id=c.assignee, label="reassigned",
                            seconds=seconds, **ids,
                        )
                    ]
                )  # fmt: skip
            if source == "customer":
                self.customer(conv, c, kind, at, ids)
            else:
                self.answer(conv, c, source, kind, at, ids, team_agents)
            if n == reopen_after:
                # Closed, and the customer writes again (the next message) minutes later.
                self.resolve(conv, c, at + dt.timedelta(minutes=rng.uniform(1, 5)), ids)
        if conv.status == "resolved" and not c.closed and c.opened_at is not None:
            self.resolve(conv, c, last + dt.timedelta(seconds=lognormal(rng, 1800, 1.5)), ids)

    def customer(self, conv: Any, c: Cycle, kind: str, at: dt.datetime, ids: Any) -> None:
        tx = [self.fact(Kind.MESSAGE, at, conv, source="customer", label=kind)]
        if not c.began or c.closed:
            label = "reopened" if c.began else "new"
            tx.append(
                self.fact(
                    Kind.OPENED, at, conv, agent_id=c.assignee, label=label, source="customer",
                    **ids,
                )
            )  # fmt: skip
            if not c.began:
                tx.append(self.fact(Kind.CONTACT, at, conv, team_id=0, source="whatsapp"))
                if self.rng.random() < 0.05:  # the bot handed it over to a person
                    tx.append(self.fact(Kind.HANDOFF, at, conv, source="bot"))
            c.began, c.closed = True, False
            c.opened_at, c.first_response_at = at, None
        if c.waiting_since is None:
            c.waiting_since = at
        self.out.tx(tx)

    def answer(
        self,
        conv: Any,
        c: Cycle,
        source: str,
        kind: str,
        at: dt.datetime,
        ids: Any,
        team_agents: list[int],
    ) -> None:
        rng = self.rng
        agent = 0
        if source == "agent":
            if not c.assignee and conv.assignee_id:  # assigned before the first answer
                c.assignee = conv.assignee_id
                queue = wait_seconds(rng) * rng.uniform(0.2, 0.9) if c.waiting_since else None
                self.out.tx(
                    [
                        self.fact(
                            Kind.ASSIGNED, at, conv, agent_id=c.assignee, label="assigned",
                            seconds=queue, **ids,
                        )
                    ]
                )  # fmt: skip
            agent = c.assignee or rng.choice(team_agents)
        tx = [self.fact(Kind.MESSAGE, at, conv, agent_id=agent, source=source, label=kind)]
        who = {"source": source, "agent_id": agent, **ids}
        if c.waiting_since is not None:
            seconds = wait_seconds(rng)
            tx.append(self.fact(Kind.RESPONSE, at, conv, seconds=seconds, **who))
            if c.opened_at is not None and c.first_response_at is None:
                c.first_response_at = at
                tx.append(self.fact(Kind.FIRST_RESPONSE, at, conv, seconds=seconds, **who))
        c.waiting_since = None
        if source == "business_app":  # free, and no status webhook brings its pricing
            tx.append(
                self.fact(Kind.PRICING, at, conv, team_id=0, source="app", label="business_app:")
            )
        self.out.tx(tx)
        if source == "agent":  # the "sent" status brings Meta's pricing
            billable = rng.random() < 0.04
            category = rng.choice(("utility", "marketing")) if billable else "service"
            label = "billable:CO" if billable else "free_customer_service:CO"
            status_at = at + dt.timedelta(seconds=rng.uniform(1, 5))
            self.out.tx(
                [self.fact(Kind.PRICING, status_at, conv, team_id=0, source=category, label=label)]
            )

    def resolve(self, conv: Any, c: Cycle, at: dt.datetime, ids: Any) -> None:
        if at > NOW or c.opened_at is None:
            return  # still open
        seconds = (at - c.opened_at).total_seconds() + lognormal(self.rng, 900, 1.5)
        if self.rng.random() < 0.1:
            seconds += self.rng.uniform(1, 3) * 86400
        self.out.tx(
            [self.fact(Kind.RESOLVED, at, conv, agent_id=c.assignee, seconds=seconds, **ids)]
        )
        c.closed, c.opened_at = True, None
        if self.rng.random() < 0.3:
            score = self.rng.choices((1, 2, 3, 4, 5), (4, 4, 10, 30, 52))[0]
            answered = at + dt.timedelta(minutes=self.rng.uniform(1, 60))
            if answered > NOW:
                return
            self.out.tx(
                [self.fact(Kind.CSAT, answered, conv, agent_id=c.assignee, label=str(score), **ids)]
            )
            comment = self.rng.choice(("Muy amables", "Tardaron un poco", "Todo perfecto"))
            self.surveys.append(
                {
                    "workspace_id": self.w.workspace_id,
                    "conversation_id": conv.id,
                    "channel_id": conv.channel_id,
                    "contact_id": conv.contact_id,
                    "agent_id": c.assignee or None,
                    "team_id": conv.team_id,
                    "state": "answered",
                    "score": score,
                    "comment": comment if self.rng.random() < 0.25 else None,
                    "answered_at": answered,
                }
            )

    def workspace_facts(self, days: int, recipients: int, contacts: int) -> None:
        """Facts that belong to no conversation: presence, broadcasts, consent, imports."""
        rng, ws = self.rng, self.w.workspace_id
        zone = zoneinfo.ZoneInfo(ZONE)
        today = NOW.astimezone(zone).date()
        for back in range(days):
            day = today - dt.timedelta(days=back)
            start = dt.datetime.combine(day, dt.time(8), tzinfo=zone).astimezone(dt.UTC)
            for agent in self.w.agent_ids:
                spans = (("offline", 0.0, 8.0), ("online", 8.0, 17.0), ("away", 17.0, 18.0))
                for status, begin, end in spans:
                    at = start + dt.timedelta(hours=end - 8 + rng.uniform(-0.5, 0.5))
                    if at < NOW:
                        seconds = (end - begin) * 3600
                        fact = Fact(Kind.PRESENCE.value, ws, at, agent_id=agent, label=status)
                        self.out.tx([replace(fact, seconds=seconds)])
        channel = self.w.channel_ids[0]
        for b in range(6):
            sent = NOW - dt.timedelta(days=days * (b + 0.5) / 6)
            template = f"promo_{b}"
            base = Fact(Kind.BROADCAST.value, ws, sent, channel_id=channel, source=template)
            queued = Fact(
                Kind.MESSAGE.value, ws, sent, channel_id=channel, source="broadcast",
                label="template", count=recipients,
            )  # fmt: skip
            self.out.tx([queued])
            states: list[list[Fact]] = [[], [], []]
            for r in range(recipients):
                later = sent + dt.timedelta(seconds=r / 20)  # the number's pace
                if rng.random() < 0.03:
                    states[0].append(replace(base, at=later, label="failed:131049"))
                    continue
                price = Fact(
                    Kind.PRICING.value, ws, later, channel_id=channel, source="marketing",
                    label="billable:CO",
                )  # fmt: skip
                states[0] += [replace(base, at=later, label="sent"), price]
                if rng.random() < 0.9:
                    states[1].append(
                        replace(base, at=later + dt.timedelta(seconds=3), label="delivered")
                    )
                    if rng.random() < 0.6:
                        read = later + dt.timedelta(minutes=rng.uniform(1, 600))
                        states[2].append(replace(base, at=read, label="read"))
                        if rng.random() < 0.08:
                            self.out.tx([replace(base, at=read, label="replied")])
            for burst in states:  # status webhooks come in bursts: 50 events a transaction
                for start_at in range(0, len(burst), 50):
                    self.out.tx(burst[start_at : start_at + 50])
        for _ in range(contacts // 50):
            at = NOW - dt.timedelta(seconds=rng.uniform(0, days * 86400))
            label = "opt_out" if rng.random() < 0.2 else "opt_in"
            self.out.tx([Fact(Kind.CONSENT.value, ws, at, source="marketing", label=label)])
        imported = NOW - dt.timedelta(days=days / 3)
        self.out.tx(
            [Fact(Kind.CONTACT.value, ws, imported, source="import", count=max(contacts // 200, 1))]
        )


def record_facts(world: World, fold: bool) -> int:
    """The facts of the data set, written as the real code would have; returns the rows."""
    db, t = world.db, time.perf_counter()
    writer = FactWriter(db, fold)
    sim = Simulation(world, writer)
    with db.engine.connect() as conn:
        conversations = conn.execute(
            select(
                Conversation.id,
                Conversation.channel_id,
                Conversation.contact_id,
                Conversation.status,
                Conversation.assignee_id,
                Conversation.team_id,
            ).order_by(Conversation.id)
        ).all()
    # One in 20 chats came from the owner's phone's history, not through Puente.
    imported = [c.id for n, c in enumerate(conversations) if n % 20 == 19]
    with db.engine.begin() as conn:
        for start in range(0, len(imported), 1000):
            conn.execute(
                update(Message)
                .where(Message.conversation_id.in_(imported[start : start + 1000]))
                .values(source="history")
            )
    imported_set = set(imported)
    step = 2000
    for start in range(0, len(conversations), step):
        part = conversations[start : start + step]
        by_conversation: dict[int, list[tuple[str, str, dt.datetime]]] = defaultdict(list)
        with db.engine.connect() as conn:
            for cid, source, kind, at in conn.execute(
                select(Message.conversation_id, Message.source, Message.type, Message.timestamp)
                .where(Message.conversation_id.between(part[0].id, part[-1].id))
                .order_by(Message.conversation_id, Message.timestamp, Message.id)
            ):
                by_conversation[cid].append((source, kind, at))
        for conv in part:
            messages = by_conversation.get(conv.id)
            if not messages:
                continue
            if conv.id in imported_set:
                sim.history(conv, messages)
            else:
                sim.conversation(conv, messages)
    sim.workspace_facts(90, max(100, len(conversations) // 50), len(conversations))
    writer.close()
    with db.engine.begin() as conn:
        for start in range(0, len(sim.surveys), CHUNK):
            conn.execute(insert(CsatSurvey), sim.surveys[start : start + CHUNK])
    analyze(db, "report_facts", "messages", "csat_surveys")
    log(
        f"  report facts: {writer.written:,} rows ({'folded per quarter hour' if fold else 'as recorded, a transaction per message'}), "
        f"{len(sim.surveys):,} CSAT answers: {time.perf_counter() - t:.0f} s"
    )
    return writer.written


def analyze(db: Database, *tables: str) -> None:
    """Statistics as autovacuum (PostgreSQL) or an ANALYZE (SQLite) leave them after a
    bulk load, as bench/inbox does."""
    if db.is_postgres:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    else:
        with db.engine.begin() as conn:
            for table in tables:
                conn.exec_driver_sql(f"ANALYZE {table}")
