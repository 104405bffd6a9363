"""The demo's automation, so that a newcomer sees it at work within a minute: a support
team of two agents (online) that takes the Business-app number's conversations in turn,
business hours that keep the shop closed on the day the demo was made (an inventory
day, so the out-of-hours reply shows whatever the hour), and two ready-made workflows
switched on: the out-of-hours reply and the round-robin assignment."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor
from puente.accounts.models import Membership, Role, User, Workspace
from puente.accounts.service import do_create_team, do_create_user, do_set_team_members
from puente.automation.hours import do_set_business_hours
from puente.automation.routing.models import Strategy
from puente.automation.routing.service import do_set_default_team, do_set_team_routing
from puente.automation.workflows.library import do_install
from puente.automation.workflows.service import do_publish, do_set_enabled
from puente.channels.models import Channel
from puente.db.base import utcnow

TEAM = "Atención al cliente"
AGENTS = (
    ("Camila Rojas", "camila@demo.puente.local"),
    ("Andrés Gómez", "andres@demo.puente.local"),
)
# (ready-made workflow, name, description): in Spanish, as the demo shop speaks it. The
# assignment sends nothing itself: the out-of-hours reply and the bot already answer.
WORKFLOWS = (
    (
        "out_of_hours",
        "Respuesta fuera de horario",
        "Responde a quien escribe cuando el número está cerrado.",
    ),
    (
        "auto_assign_sales",
        "Asignación por turnos al equipo de atención",
        "Cada conversación nueva pasa al equipo de atención, que la reparte por turnos.",
    ),
)


def _hours(time_zone: str, today: dt.date) -> dict[str, object]:
    weekday = [{"start": "08:00", "end": "18:00"}]
    return {
        "time_zone": time_zone,
        "week": {
            "mon": weekday,
            "tue": weekday,
            "wed": weekday,
            "thu": weekday,
            "fri": weekday,
            "sat": [{"start": "09:00", "end": "13:00"}],
            "sun": [],
        },
        "holidays_country": "CO",
        # The day the demo was made: closed for inventory, so the reply shows now.
        "closed_dates": [today.isoformat()],
        # The out-of-hours workflow answers instead of the plain away message.
        "away_enabled": False,
        "away_message": "",
    }


def seed_demo_automation(
    session: Session, workspace_id: int, owner_id: int, channel_id: int, password: str
) -> None:
    workspace = session.get(Workspace, workspace_id)
    channel = session.get(Channel, channel_id)
    membership = session.scalar(
        select(Membership).where(
            Membership.workspace_id == workspace_id, Membership.user_id == owner_id
        )
    )
    owner = session.get(User, owner_id)
    assert workspace is not None and channel is not None and membership is not None
    actor = Actor(workspace_id=workspace_id, user=owner, membership=membership)

    agent_ids = []
    for name, email in AGENTS:
        user, _ = do_create_user(
            session,
            workspace=workspace,
            email=email,
            password=password,
            name=name,
            role=Role.AGENT,
            locale="es",
        )
        # Chosen by hand: routing counts them as available, and no sweep turns them away.
        user.availability = "online"
        user.availability_chosen_at = utcnow()
        agent_ids.append(user.id)
    team = do_create_team(session, actor, TEAM)
    do_set_team_members(session, actor, team.id, agent_ids)
    do_set_team_routing(session, actor, team.id, strategy=Strategy.ROUND_ROBIN.value, capacity=None)
    do_set_default_team(session, actor, channel, team.id)

    today = utcnow().astimezone(ZoneInfo(workspace.timezone)).date()
    do_set_business_hours(session, channel, _hours(workspace.timezone, today), actor)

    for key, name, description in WORKFLOWS:
        workflow = do_install(
            session, workspace_id, key, actor, language="es", name=name, description=description
        )
        do_publish(session, workflow, actor)
        do_set_enabled(session, workflow, True, actor)
