"""Six months of the demo shop's past for its reports: the facts its team, its owner's
phone, its customers and its broadcasts would have left, then the rollups summed from them
(as `puente reports rebuild` does), so that a newcomer opens the dashboard and every report
and sees a shop at work: busier on weekdays and late mornings, two agents and the owner
answering from the phone, imported history, billable templates and free replies, CSAT.

They are facts, not messages: the demo's chats stay the few the sandbox made."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, Role, Team, Workspace
from puente.channels.models import Channel
from puente.db.base import utcnow
from puente.db.bulk_rows import insert_rows
from puente.reports.facts import Fact, Kind, folded
from puente.reports.models import ReportFact
from puente.reports.rollup import Context, add_up, add_weeks, insert_rollups

DAYS = 182
# Per hour of the day (local), how likely a customer writes then: a shop open 8 to 20.
_HOURS = [0, 0, 0, 0, 0, 0, 1, 2, 4, 7, 9, 9, 8, 6, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0]
_TYPES = ("text",) * 12 + ("image", "audio", "document", "sticker")
_COUNTRIES = ("CO",) * 8 + ("MX", "ES", "US")
_TEMPLATES = ("promo_mensual", "recordatorio_pedido")
_FACT_COLUMNS = (
    "workspace_id",
    "kind",
    "at",
    "channel_id",
    "conversation_id",
    "team_id",
    "agent_id",
    "source",
    "label",
    "count",
    "seconds",
    "rolled_up",
)


def seed_demo_reports(session: Session, workspace_id: int, seed: int = 2026) -> int:
    """Write the facts of the `DAYS` days before today and sum them into the rollups;
    returns how many facts were written."""
    rng = random.Random(seed)
    workspace = session.get(Workspace, workspace_id)
    assert workspace is not None
    zone = zoneinfo.ZoneInfo(workspace.timezone or "UTC")
    channels = list(
        session.scalars(
            select(Channel.id).where(Channel.workspace_id == workspace_id).order_by(Channel.id)
        )
    )
    agents = list(
        session.scalars(
            select(Membership.user_id).where(
                Membership.workspace_id == workspace_id, Membership.role == Role.AGENT.value
            )
        )
    )
    team = session.scalar(select(Team.id).where(Team.workspace_id == workspace_id)) or 0
    if not channels:
        return 0
    today = utcnow().astimezone(zone).date()
    facts: list[Fact] = []
    for back in range(DAYS, 0, -1):
        day = today - dt.timedelta(days=back)
        facts += _day(rng, workspace_id, zone, day, channels, agents, team)
    # Written as a rebuild would leave them, without reading them back: the facts (marked
    # rolled up) through the driver, and their sums as new rollup rows.
    made = folded(facts)
    # The timestamps as the driver takes them (db_time's form), worked out without asking
    # the dialect 40,000 times.
    postgres = session.get_bind().dialect.name == "postgresql"

    def stamp(at: dt.datetime) -> str:
        utc = at.astimezone(dt.UTC)
        if postgres:
            return utc.isoformat()
        return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    rows = [
        (
            f.workspace_id,
            f.kind,
            stamp(f.at),
            f.channel_id,
            0,
            f.team_id,
            f.agent_id,
            f.source,
            f.label,
            f.count,
            f.seconds,
            True,
        )
        for f in made
    ]
    insert_rows(session, ReportFact, _FACT_COLUMNS, rows)
    context = Context.load(session, {workspace_id})
    tuples = [
        (
            f.workspace_id,
            f.kind,
            f.at,
            f.channel_id,
            f.team_id,
            f.agent_id,
            f.source,
            f.label,
            f.count,
            f.seconds,
        )
        for f in made
    ]
    insert_rollups(session, add_weeks(add_up(tuples, context)))
    return len(rows)


def _day(
    rng: random.Random,
    workspace_id: int,
    zone: zoneinfo.ZoneInfo,
    day: dt.date,
    channels: list[int],
    agents: list[int],
    team: int,
) -> list[Fact]:
    weekday = day.weekday()
    busy = 1.0 if weekday < 5 else (0.6 if weekday == 5 else 0.25)
    # A slow start half a year ago, busier lately.
    arrivals = int(rng.gauss(26, 5) * busy * (0.7 + 0.3 * (day.toordinal() % 182) / 182))
    out: list[Fact] = []

    def at(hour: int, minute: int) -> dt.datetime:
        local = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
        return local.astimezone(dt.UTC)

    def fact(kind: Kind, when: dt.datetime, **dims: Any) -> Fact:
        base: dict[str, Any] = {"channel_id": channels[0], "team_id": team, **dims}
        return Fact(kind=kind.value, workspace_id=workspace_id, at=when, **base)

    for _ in range(max(arrivals, 0)):
        hour = rng.choices(range(24), weights=_HOURS)[0]
        start = at(hour, rng.randrange(60))
        channel = channels[0] if rng.random() < 0.8 or len(channels) == 1 else channels[1]
        reopened = rng.random() < 0.12
        out.append(
            fact(
                Kind.OPENED,
                start,
                channel_id=channel,
                source="customer",
                label="reopened" if reopened else "new",
            )
        )
        customer_messages = rng.randint(1, 6)
        for i in range(customer_messages):
            out.append(
                fact(
                    Kind.MESSAGE,
                    start + dt.timedelta(minutes=i * 3),
                    channel_id=channel,
                    source="customer",
                    label=rng.choice(_TYPES),
                )
            )
        # Who answers: an agent of the team, or the owner from the phone.
        by_phone = not agents or rng.random() < 0.22
        agent = 0 if by_phone else rng.choice(agents)
        source = "business_app" if by_phone else "agent"
        wait = rng.lognormvariate(5.3 if by_phone else 5.8, 1.0)  # about 3 and 5 minutes
        answered = start + dt.timedelta(seconds=wait)
        if not by_phone:
            out.append(
                fact(
                    Kind.ASSIGNED,
                    start + dt.timedelta(seconds=wait / 3),
                    channel_id=channel,
                    agent_id=agent,
                    label="reassigned" if rng.random() < 0.08 else "assigned",
                    seconds=wait / 3,
                )
            )
        out.append(
            fact(
                Kind.FIRST_RESPONSE,
                answered,
                channel_id=channel,
                agent_id=agent,
                source=source,
                seconds=wait,
            )
        )
        out.append(
            fact(
                Kind.RESPONSE,
                answered,
                channel_id=channel,
                agent_id=agent,
                source=source,
                seconds=wait,
            )
        )
        replies = rng.randint(1, 4)
        for i in range(replies):
            out.append(
                fact(
                    Kind.MESSAGE,
                    answered + dt.timedelta(minutes=i * 4),
                    channel_id=channel,
                    agent_id=agent,
                    source=source,
                    label="text",
                )
            )
            if by_phone:
                out.append(
                    fact(
                        Kind.PRICING,
                        answered,
                        channel_id=channel,
                        source="app",
                        label="business_app:",
                    )
                )
            else:
                out.append(
                    fact(
                        Kind.PRICING,
                        answered,
                        channel_id=channel,
                        source="service",
                        label=f"free_customer_service:{rng.choice(_COUNTRIES)}",
                    )
                )
        for i in range(1, replies):
            later = rng.lognormvariate(5.0, 0.9)
            out.append(
                fact(
                    Kind.RESPONSE,
                    answered + dt.timedelta(seconds=later * i),
                    channel_id=channel,
                    agent_id=agent,
                    source=source,
                    seconds=later,
                )
            )
        if rng.random() < 0.9:
            resolve = wait + rng.lognormvariate(7.6, 0.9)  # about half an hour
            closed = start + dt.timedelta(seconds=resolve)
            out.append(
                fact(Kind.RESOLVED, closed, channel_id=channel, agent_id=agent, seconds=resolve)
            )
            if agent and rng.random() < 0.35:
                score = rng.choices((1, 2, 3, 4, 5), weights=(3, 4, 10, 30, 53))[0]
                out.append(
                    fact(
                        Kind.CSAT,
                        closed + dt.timedelta(minutes=3),
                        channel_id=channel,
                        agent_id=agent,
                        label=str(score),
                    )
                )
        if rng.random() < 0.3:
            out.append(
                fact(
                    Kind.MESSAGE,
                    start + dt.timedelta(seconds=20),
                    channel_id=channel,
                    source="bot",
                    label="text",
                )
            )
        if rng.random() < 0.35:
            source_of_contact = rng.choices(("whatsapp", "business_app", "import"), (6, 3, 1))[0]
            out.append(fact(Kind.CONTACT, start, channel_id=0, team_id=0, source=source_of_contact))
    if rng.random() < 0.1:
        out.append(
            fact(
                Kind.CONSENT,
                at(11, 0),
                channel_id=0,
                team_id=0,
                label="opt_out",
                source="marketing",
            )
        )
    for _ in range(rng.randint(0, 3)):
        out.append(
            fact(
                Kind.CONSENT, at(12, 0), channel_id=0, team_id=0, label="opt_in", source="marketing"
            )
        )
    if day.day in (1, 15):
        out += _broadcast(rng, fact, at(10, 0), channels[0])
    # A working day online, a break away, for each agent (not on the quiet days).
    for agent in agents if busy > 0.3 else []:
        for status, minute, hours in (
            ("online", 0, rng.gauss(8, 0.7)),
            ("away", 5, rng.gauss(0.8, 0.3)),
        ):
            out.append(
                fact(
                    Kind.PRESENCE,
                    at(18, minute),
                    channel_id=0,
                    team_id=0,
                    agent_id=agent,
                    label=status,
                    seconds=hours * 3600,
                )
            )
    return out


Maker = Callable[..., Fact]


def _broadcast(rng: random.Random, make: Maker, when: dt.datetime, channel: int) -> list[Fact]:
    """A campaign to a few hundred customers: how far each message got."""
    template = rng.choice(_TEMPLATES)
    category = "marketing" if template == "promo_mensual" else "utility"
    sent = rng.randint(250, 420)
    failed = int(sent * rng.uniform(0.01, 0.04))
    delivered = int((sent - failed) * rng.uniform(0.93, 0.98))
    read = int(delivered * rng.uniform(0.55, 0.8))
    replied = int(read * rng.uniform(0.05, 0.15))
    out: list[Fact] = []
    for label, count in (
        ("sent", sent),
        ("delivered", delivered),
        ("read", read),
        ("replied", replied),
        ("failed:131049", failed // 2),
        ("failed:131026", failed - failed // 2),
    ):
        made = make(Kind.BROADCAST, when, channel_id=channel, source=template, label=label)
        out.append(replace(made, count=count))
    made = make(Kind.MESSAGE, when, channel_id=channel, source="broadcast", label="template")
    out.append(replace(made, count=sent))
    for country, share in (("CO", 0.8), ("MX", 0.15), ("ES", 0.05)):
        made = make(
            Kind.PRICING, when, channel_id=channel, source=category, label=f"billable:{country}"
        )
        out.append(replace(made, count=int(delivered * share)))
    return out
