"""Routing as a business meets it: customers write to the number from the sandbox's phone,
the number sends their conversations to its team, and the team's available agents get
them in turn, within their capacity; the overflow waits in the team's queue until an
agent closes a conversation in the inbox or signs in. Set up through the REST API, on a
live Puente with its workers, against the Meta sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from puente.accounts.models import User, Workspace
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from tests.channels.conftest import NUMBER, Coex, make_coex  # noqa: F401 (a fixture)
from tests.factories import PASSWORD, make_team, make_user
from tests.waiting import wait_until
from tests.webclient import WebClient

ANA, BETO = "ana@tienda.example", "beto@tienda.example"


@dataclass(frozen=True)
class Seen:
    """A conversation as read at one moment."""

    id: int
    team_id: int | None
    assignee_id: int | None
    unread_count: int


@pytest.fixture
def shop(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    return make_coex()


def _staff(coex: Coex, *, beto_online: bool = True) -> tuple[int, int, int]:
    """Ana and Beto (online unless told) in the team Soporte; returns their ids and the team's."""
    with coex.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, coex.workspace_id)
        assert ws is not None
        ana = make_user(session, ws, name="Ana Pérez", email=ANA)
        beto = make_user(session, ws, name="Beto Ruiz", email=BETO)
        ana.availability = "online"
        beto.availability = "online" if beto_online else "offline"
        team = make_team(session, ws, "Soporte", [ana, beto])
        return ana.id, beto.id, team.id


def _route(coex: Coex, channel_id: int, team_id: int, strategy: str, capacity: int | None) -> None:
    res = coex.api.put(
        f"/teams/{team_id}/routing", json={"strategy": strategy, "capacity": capacity}
    )
    assert res.status_code == 200, res.text
    res = coex.api.put(f"/channels/{channel_id}/routing", json={"default_team_id": team_id})
    assert res.status_code == 200, res.text
    assert res.json() == {"channel_id": channel_id, "default_team_id": team_id}


def _writes(coex: Coex, customer: str, text: str = "Hola, necesito ayuda") -> None:
    res = coex.control.post(
        f"/numbers/{NUMBER}/inbound", json={"from": customer, "name": customer, "text": text}
    )
    assert res.status_code == 201, res.text


def _conversation(coex: Coex, customer: str) -> Seen | None:
    with coex.db.read(unscoped="test") as session:
        row = session.execute(
            select(
                Conversation.id,
                Conversation.team_id,
                Conversation.assignee_id,
                Conversation.unread_count,
            )
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.wa_id == customer)
        ).first()
    return Seen(*row) if row is not None else None


def _routed(coex: Coex, customer: str) -> Seen:
    """The customer's conversation once it has reached its team (queued or assigned)."""
    found: Seen = wait_until(
        lambda: (c := _conversation(coex, customer)) is not None and c.team_id and c,
        what=f"{customer}'s conversation in a team",
    )
    return found


def _assigned(coex: Coex, customer: str) -> int:
    conversation = wait_until(
        lambda: (c := _conversation(coex, customer)) is not None and c.assignee_id and c,
        what=f"{customer}'s conversation assigned",
    )
    return int(conversation.assignee_id)


def _sign_in(coex: Coex, email: str) -> WebClient:
    web = WebClient(httpx.Client(base_url=coex.puente.url, timeout=30))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def test_new_customers_go_to_the_numbers_team_and_its_agents_in_turn(shop: Coex) -> None:
    coex = shop
    channel_id = coex.onboard(import_history=False)
    ana, beto, team = _staff(coex)
    _route(coex, channel_id, team, "round_robin", None)

    customers = ["5215550000001", "5215550000002", "5215550000003"]
    for customer in customers:
        _writes(coex, customer)
        _assigned(coex, customer)
    got = [_assigned(coex, c) for c in customers]
    assert got == [ana, beto, ana]
    assert {_routed(coex, c).team_id for c in customers} == {team}

    # The team's list in the API shows the same.
    teams = coex.api.get("/teams").json()
    assert [(t["name"], t["strategy"], t["queued"]) for t in teams] == [
        ("Soporte", "round_robin", 0)
    ]


def test_the_overflow_waits_in_the_queue_until_an_agent_closes_one_or_signs_in(shop: Coex) -> None:
    coex = shop
    channel_id = coex.onboard(import_history=False)
    ana, beto, team = _staff(coex, beto_online=False)
    _route(coex, channel_id, team, "least_busy", 1)

    _writes(coex, "5215550000011")
    assert _assigned(coex, "5215550000011") == ana
    # Ana is at her capacity and Beto is offline: the next customer waits in the queue.
    _writes(coex, "5215550000012")
    waiting = _routed(coex, "5215550000012")
    assert waiting.assignee_id is None
    assert coex.api.get(f"/teams/{team}/routing").json()["queued"] == 1

    # Ana closes her conversation in the inbox: the waiting one is hers at once.
    web = _sign_in(coex, ANA)
    first = _conversation(coex, "5215550000011")
    assert first is not None
    res = web.post(f"/inbox/c/{first.id}/close", {}, follow_redirects=False)
    assert res.status_code in (200, 303), res.text
    assert _assigned(coex, "5215550000012") == ana

    # Another customer: Ana is full again, so it waits until Beto signs in.
    _writes(coex, "5215550000013")
    assert _routed(coex, "5215550000013").assignee_id is None
    _sign_in(coex, BETO)
    assert _assigned(coex, "5215550000013") == beto


def test_an_agent_who_is_away_is_never_given_a_conversation(shop: Coex) -> None:
    coex = shop
    channel_id = coex.onboard(import_history=False)
    ana, beto, team = _staff(coex)
    with coex.db.unit_of_work(unscoped="test") as session:
        user = session.get(User, ana)
        assert user is not None
        user.availability = "away"
    _route(coex, channel_id, team, "round_robin", None)
    for customer in ("5215550000021", "5215550000022"):
        _writes(coex, customer)
        assert _assigned(coex, customer) == beto


def test_the_owners_phone_and_assigned_conversations_are_not_routed(shop: Coex) -> None:
    coex = shop
    channel_id = coex.onboard(import_history=False)
    _ana, beto, team = _staff(coex)
    # A customer already talking to Beto, before routing was turned on.
    _writes(coex, "5215550000031")
    first = wait_until(lambda: _conversation(coex, "5215550000031"), what="the conversation")
    with coex.db.unit_of_work(unscoped="test") as session:
        row = session.get(Conversation, first.id)
        assert row is not None
        row.assignee_id = beto
    _route(coex, channel_id, team, "round_robin", None)

    # The owner writes from the phone to someone new: an echo, never routed.
    res = coex.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": "5215550000032", "text": "Hola"}
    )
    assert res.status_code == 201, res.text
    echo = wait_until(lambda: _conversation(coex, "5215550000032"), what="the echo's conversation")
    # The customer writes again: they stay with Beto, in no team's queue.
    _writes(coex, "5215550000031", "¿Me oyes?")
    wait_until(
        lambda: (c := _conversation(coex, "5215550000031")) and c.unread_count >= 2,
        what="the second message",
    )
    again = _conversation(coex, "5215550000031")
    assert again is not None and (again.assignee_id, again.team_id) == (beto, None)
    assert (echo.assignee_id, echo.team_id) == (None, None)


def test_a_manual_team_keeps_its_queue_for_people_to_take(shop: Coex) -> None:
    coex = shop
    channel_id = coex.onboard(import_history=False)
    _ana, _beto, team = _staff(coex)
    _route(coex, channel_id, team, "manual", None)
    _writes(coex, "5215550000041")
    _routed(coex, "5215550000041")
    # Writing again wakes routing again; still nobody is given it.
    _writes(coex, "5215550000041", "¿Hola?")
    conversation = wait_until(
        lambda: (c := _conversation(coex, "5215550000041")) and c.unread_count >= 2 and c,
        what="the second message",
    )
    assert conversation.assignee_id is None
    assert coex.api.get(f"/teams/{team}/routing").json()["queued"] == 1
