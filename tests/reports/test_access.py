"""Who sees which report figures: supervisors everything, an agent their own figures
(and their own teams'), a membership that grants reports.view everything, an API token by
its scope; a number, team or agent of another workspace as if it did not exist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.gate import Actor, load_member_actor, token_actor
from puente.accounts.models import Membership, User
from puente.accounts.tokens import do_create_token
from puente.db.session import Database
from puente.errors import Forbidden, InvalidInput, NotFound
from puente.reports.access import OWN_REPORTS, Asked, access_report, reports_for
from puente.reports.queries import REPORTS
from puente.reports.ranges import DateRange
from tests.factories import make_channel, make_team, make_user, make_workspace

WEEK = DateRange(dt.date(2026, 3, 1), dt.date(2026, 3, 7), "custom", "UTC")


@dataclass
class Shop:
    ws: int
    supervisor: int
    agent: int
    colleague: int
    channel: int
    own_team: int
    other_team: int
    elsewhere_channel: int
    elsewhere_team: int
    elsewhere_agent: int


@pytest.fixture
def shop(db: Database) -> Shop:
    with db.unit_of_work(unscoped="test") as s:
        ws = make_workspace(s, "Tienda")
        sup = make_user(s, ws, role="supervisor")
        agent = make_user(s, ws, role="agent")
        colleague = make_user(s, ws, role="agent")
        own = make_team(s, ws, "Ventas", [agent])
        other = make_team(s, ws, "Soporte", [colleague])
        channel = make_channel(s, ws)
        far = make_workspace(s, "Otra")
        return Shop(
            ws.id,
            sup.id,
            agent.id,
            colleague.id,
            channel.id,
            own.id,
            other.id,
            make_channel(s, far).id,
            make_team(s, far, "Ventas", []).id,
            make_user(s, far, role="agent").id,
        )


def member(s: Session, shop: Shop, user_id: int) -> Actor:
    user = s.get(User, user_id)
    assert user is not None
    actor = load_member_actor(s, user, shop.ws)
    assert actor is not None
    return actor


def test_a_supervisor_sees_every_figure_and_filters_as_asked(db: Database, shop: Shop) -> None:
    with db.read(scope=shop.ws) as s:
        sup = member(s, shop, shop.supervisor)
        assert reports_for(sup) == list(REPORTS)
        f = access_report(s, sup, "costs", WEEK, Asked())
        assert (f.workspace_id, f.start, f.end, f.agent_id, f.channel_ids) == (
            shop.ws,
            WEEK.start,
            WEEK.end,
            None,
            None,
        )
        asked = Asked(shop.channel, shop.other_team, shop.colleague, "business_app")
        f = access_report(s, sup, "messages", WEEK, asked)
        assert (f.channel_ids, f.team_id, f.agent_id, f.source) == (
            (shop.channel,),
            shop.other_team,
            shop.colleague,
            "business_app",
        )


def test_a_filter_a_report_cannot_be_cut_by_is_refused(db: Database, shop: Shop) -> None:
    with db.read(scope=shop.ws) as s:
        sup = member(s, shop, shop.supervisor)
        with pytest.raises(InvalidInput, match="cannot be filtered by team"):
            access_report(s, sup, "costs", WEEK, Asked(team_id=shop.own_team))
        with pytest.raises(InvalidInput, match="cannot be filtered by number"):
            access_report(s, sup, "contacts", WEEK, Asked(channel_id=shop.channel))
        assert access_report(s, sup, "contacts", WEEK, Asked(source="import")).source == "import"


def test_an_agent_sees_only_their_own_figures(db: Database, shop: Shop) -> None:
    with db.read(scope=shop.ws) as s:
        agent = member(s, shop, shop.agent)
        assert set(reports_for(agent)) == OWN_REPORTS
        assert access_report(s, agent, "responses", WEEK, Asked()).agent_id == shop.agent
        own = access_report(
            s, agent, "csat", WEEK, Asked(agent_id=shop.agent, team_id=shop.own_team)
        )
        assert (own.agent_id, own.team_id) == (shop.agent, shop.own_team)
        with pytest.raises(Forbidden, match="your own figures"):
            access_report(s, agent, "leaderboard", WEEK, Asked(agent_id=shop.colleague))
        with pytest.raises(Forbidden, match="your own teams"):
            access_report(s, agent, "leaderboard", WEEK, Asked(team_id=shop.other_team))
        for key in ("contacts", "broadcasts", "costs"):
            with pytest.raises(Forbidden, match=r"reports\.view"):
                access_report(s, agent, key, WEEK, Asked())


def test_a_membership_that_grants_reports_sees_everything(db: Database, shop: Shop) -> None:
    with db.unit_of_work(scope=shop.ws) as s:
        membership = s.scalar(select(Membership).where(Membership.user_id == shop.agent))
        assert membership is not None
        membership.permissions = {"reports.view": True}
    with db.read(scope=shop.ws) as s:
        agent = member(s, shop, shop.agent)
        assert access_report(s, agent, "costs", WEEK, Asked()).agent_id is None
        f = access_report(s, agent, "csat", WEEK, Asked(agent_id=shop.colleague))
        assert f.agent_id == shop.colleague


def test_what_belongs_to_another_workspace_is_not_found(db: Database, shop: Shop) -> None:
    with db.read(scope=shop.ws) as s:
        for viewer in (shop.supervisor, shop.agent):
            actor = member(s, shop, viewer)
            for asked, what in (
                (Asked(channel_id=shop.elsewhere_channel), "number"),
                (Asked(team_id=shop.elsewhere_team), "team"),
                (Asked(agent_id=shop.elsewhere_agent), "agent"),
                (Asked(channel_id=987654), "number"),
            ):
                with pytest.raises(NotFound, match=f"no such {what}"):
                    access_report(s, actor, "messages", WEEK, asked)
        with pytest.raises(NotFound, match="no such report"):
            access_report(s, member(s, shop, shop.supervisor), "salaries", WEEK, Asked())
        with pytest.raises(InvalidInput, match="not a source"):
            access_report(
                s, member(s, shop, shop.supervisor), "messages", WEEK, Asked(source="fax")
            )


def test_an_api_token_sees_reports_by_its_scope(db: Database, shop: Shop) -> None:
    with db.unit_of_work(scope=shop.ws) as s:
        reader = do_create_token(s, workspace_id=shop.ws, name="bi", scopes=["reports:read"])
        other = do_create_token(s, workspace_id=shop.ws, name="crm", scopes=["contacts:read"])
        allowed, refused = token_actor(reader.token), token_actor(other.token)
        assert access_report(s, allowed, "costs", WEEK, Asked()).agent_id is None
        assert reports_for(refused) == []
        with pytest.raises(Forbidden, match="reports:read"):
            access_report(s, refused, "messages", WEEK, Asked())
