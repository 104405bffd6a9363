"""Conversations and their messages over the API: filters, order, pages, query counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from puente.accounts.models import User
from puente.conversations.models import Conversation
from puente.db.session import Database
from tests.api.conftest import Tenant, make_tenant
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@contextmanager
def count_queries(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            statements.append(statement)

    # GET routes read through the reader engine (on PostgreSQL, the writers' engine with
    # read-only transactions).
    event.listen(db.read_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.read_engine, "before_cursor_execute", record)


def _seed_inbox(db: Database, tenant: Tenant) -> dict[str, int]:
    with db.unit_of_work(unscoped="test") as session:
        user = User(email="agent@example.com", name="Agent")
        session.add(user)
        session.flush()
        sales = make_channel(session, tenant.workspace)
        support = make_channel(session, tenant.workspace)
        ana, beto, carla = (make_contact(session, tenant.workspace) for _ in range(3))
        first = make_conversation(
            session, sales, ana, last_activity_at=T0, labels=["vip", "billing"]
        )
        second = make_conversation(
            session,
            sales,
            beto,
            status="resolved",
            last_activity_at=T0 + dt.timedelta(hours=1),
            assignee_id=user.id,
        )
        third = make_conversation(session, support, carla, last_activity_at=None)
        return {
            "first": first.id,
            "second": second.id,
            "third": third.id,
            "sales": sales.id,
            "support": support.id,
            "user": user.id,
            "ana": ana.id,
        }


def test_conversation_filters_and_order(client: TestClient, tenant: Tenant, db: Database) -> None:
    ids = _seed_inbox(db, tenant)

    def listed(**params: str) -> list[int]:
        response = client.get("/conversations", params=params, headers=tenant.auth)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert listed() == [ids["second"], ids["first"], ids["third"]]
    assert listed(status="resolved") == [ids["second"]]
    assert listed(channel_id=str(ids["support"])) == [ids["third"]]
    assert listed(assignee_id=str(ids["user"])) == [ids["second"]]
    assert listed(assignee_id="unassigned") == [ids["first"], ids["third"]]
    assert listed(contact_id=str(ids["ana"])) == [ids["first"]]
    assert listed(label="vip") == [ids["first"]]
    assert listed(label="vi") == []
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert listed(updated_since=future) == []
    assert len(listed(updated_since="2020-01-01T00:00:00")) == 3

    one = client.get(f"/conversations/{ids['first']}", headers=tenant.auth).json()
    assert one["labels"] == ["vip", "billing"]
    assert one["last_activity_at"] == "2026-03-01T12:00:00Z"
    assert one["status"] == "open"

    bad = client.get("/conversations", params={"status": "closed"}, headers=tenant.auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "status"
    bad_assignee = client.get("/conversations", params={"assignee_id": "me"}, headers=tenant.auth)
    assert bad_assignee.status_code == 422


def test_conversation_pages_cover_everything_once(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        channel = make_channel(session, tenant.workspace)
        expected = []
        for n in range(7):
            # Two share a time, two never had activity: the order must still be total.
            at = None if n >= 5 else T0 + dt.timedelta(minutes=min(n, 3))
            contact = make_contact(session, tenant.workspace)
            expected.append(make_conversation(session, channel, contact, last_activity_at=at))
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/conversations", params=params, headers=tenant.auth).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(c.id for c in expected)
    assert len(seen) == len(set(seen)) == 7
    assert seen[-2:] == sorted((c.id for c in expected[5:]), reverse=True)


def test_messages_newest_first_with_before_cursor(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        channel = make_channel(session, tenant.workspace)
        conversation = make_conversation(
            session, channel, make_contact(session, tenant.workspace), last_activity_at=T0
        )
        messages = [
            make_message(
                session, conversation, timestamp=T0 + dt.timedelta(seconds=n), text=f"m{n}"
            )
            for n in range(5)
        ]
        echo = make_message(
            session,
            conversation,
            timestamp=T0 + dt.timedelta(seconds=10),
            direction="outbound",
            source="business_app",
            status="delivered",
            text="from the phone",
        )
    url = f"/conversations/{conversation.id}/messages"

    first = client.get(url, params={"limit": "2"}, headers=tenant.auth).json()
    assert [m["text"] for m in first["items"]] == ["from the phone", "m4"]
    newest = first["items"][0]
    assert newest["id"] == echo.id
    assert newest["wamid"] == echo.wamid
    assert newest["conversation_id"] == conversation.id
    assert (newest["direction"], newest["source"], newest["status"]) == (
        "outbound",
        "business_app",
        "delivered",
    )
    assert newest["type"] == "text"
    assert newest["timestamp"] == "2026-03-01T12:00:10Z"
    assert newest["content"] == {"body": "from the phone"}
    assert (newest["edited"], newest["revoked"]) == (False, False)

    second = client.get(
        url, params={"limit": "2", "before": first["next_cursor"]}, headers=tenant.auth
    ).json()
    assert [m["text"] for m in second["items"]] == ["m3", "m2"]
    third = client.get(
        url, params={"limit": "2", "before": second["next_cursor"]}, headers=tenant.auth
    ).json()
    assert [m["text"] for m in third["items"]] == ["m1", "m0"]
    assert third["next_cursor"] is None

    by_time = client.get(url, params={"before": "2026-03-01T12:00:02Z"}, headers=tenant.auth).json()
    assert [m["text"] for m in by_time["items"]] == ["m1", "m0"]
    assert messages[0].id == by_time["items"][-1]["id"]

    for before in ("yesterday", "999999"):
        bad = client.get(url, params={"before": before}, headers=tenant.auth)
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "before"
    too_many = client.get(url, params={"limit": "101"}, headers=tenant.auth)
    assert too_many.status_code == 422


def test_list_query_counts_do_not_grow_with_the_page(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    def counts() -> tuple[int, int, int]:
        with db.read(unscoped="test") as session:
            conv_id = _first_conversation_id(session)
        # The token's first use of the minute records its last-used time; keep that out.
        client.get("/workspace", headers=tenant.auth)
        with count_queries(db) as conversations:
            client.get("/conversations", headers=tenant.auth)
        with count_queries(db) as messages:
            client.get(f"/conversations/{conv_id}/messages", headers=tenant.auth)
        with count_queries(db) as contacts:
            client.get("/contacts", headers=tenant.auth)
        return len(conversations), len(messages), len(contacts)

    def grow(n: int) -> None:
        with db.unit_of_work(unscoped="test") as session:
            channel = make_channel(session, tenant.workspace)
            for _ in range(n):
                contact = make_contact(session, tenant.workspace)
                conversation = make_conversation(session, channel, contact, last_activity_at=T0)
                make_message(session, conversation, timestamp=T0)

    grow(2)
    small = counts()
    grow(20)
    large = counts()
    assert small == large
    # token lookup + the page (+ the conversation for messages, + tags for contacts)
    assert large == (2, 3, 3)


def _first_conversation_id(session: Session) -> int:
    conv_id = session.scalar(select(Conversation.id).order_by(Conversation.id.desc()))
    assert conv_id is not None
    return conv_id


def test_conversations_need_scopes_and_stay_in_their_workspace(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    ids = _seed_inbox(db, tenant)
    other = make_tenant(db, "Other")
    for url in (f"/conversations/{ids['first']}", f"/conversations/{ids['first']}/messages"):
        response = client.get(url, headers=other.auth)
        assert response.status_code == 404
        assert "no conversation" in response.json()["error"]["message"]
    assert client.get("/conversations", headers=other.auth).json()["items"] == []

    no_messages = make_tenant(db, "Inbox only", ["conversations:read"])
    denied = client.get(f"/conversations/{ids['first']}/messages", headers=no_messages.auth)
    assert denied.status_code == 403
    assert "messages:read" in denied.json()["error"]["message"]
