"""The inbox's hot paths make a fixed number of SQL statements, whatever the number of
conversations or messages: no N+1 can creep into the list or the conversation view."""

from __future__ import annotations

import datetime as dt

from puente.db.session import Database
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_conversation, add_message
from tests.statements import counting
from tests.webclient import WebClient

# Signing in (the session with its user, workspace, membership and teams, in one) plus the
# page's own queries (the filters' numbers, teams and members come in one; the view's
# header brings the conversation with its contact, consent, tags and unread notification).
LIST_STATEMENTS = 4
VIEW_STATEMENTS = 8


def _fill(db: Database, shop: Shop, conversations: int, messages: int) -> int:
    with db.unit_of_work(unscoped="test") as s:
        first = None
        for n in range(conversations):
            c = add_conversation(
                s,
                shop.workspace_id,
                shop.channel_id,
                f"C{n}",
                at=NOW - dt.timedelta(minutes=n),
                assignee_id=shop.ana_id if n % 2 else None,
                labels=["vip"],
                unread=1,
            )
            first = first or c
        assert first is not None
        for n in range(messages):
            add_message(
                s,
                first,
                at=NOW - dt.timedelta(seconds=n),
                text=f"m{n}",
                direction="outbound" if n % 2 else "inbound",
                source="agent" if n % 2 else "customer",
                status="read" if n % 2 else "received",
                sender_user_id=shop.owner_id if n % 2 else None,
                reply_to_wamid="wamid.UNKNOWN" if n % 3 == 0 else None,
            )
        return first.id


def _list_statements(web: WebClient, db: Database) -> int:
    with counting(db) as statements:
        assert web.get("/inbox?status=any&label=vip").status_code == 200
    return len(statements)


def _view_statements(web: WebClient, db: Database, cid: int) -> int:
    with counting(db) as statements:
        assert web.get(f"/inbox/c/{cid}").status_code == 200
    return len(statements)


def test_the_list_makes_the_same_statements_for_3_or_60_conversations(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    _fill(db, shop, 3, 0)
    small = _list_statements(owner_web, db)
    _fill(db, shop, 57, 0)
    assert (small, _list_statements(owner_web, db)) == (LIST_STATEMENTS, LIST_STATEMENTS)


def test_the_view_makes_the_same_statements_for_5_or_80_messages(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    few = _fill(db, shop, 1, 5)
    owner_web.get(f"/inbox/c/{few}")  # the first visit clears the unread marker
    small = _view_statements(owner_web, db, few)
    many = _fill(db, shop, 1, 80)
    owner_web.get(f"/inbox/c/{many}")
    assert (small, _view_statements(owner_web, db, many)) == (VIEW_STATEMENTS, VIEW_STATEMENTS)
