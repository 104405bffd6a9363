"""Workspace scoping is a mechanism: a session opened for a workspace or an actor sees only
that workspace's rows (and the actor's conversations), whatever the query forgets to say;
a session that declared nothing cannot query a workspace-owned table at all."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, func, select, update

from puente.accounts.gate import actor_scope, load_member_actor
from puente.accounts.models import User
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.db.base import WorkspaceOwned
from puente.db.models import Base
from puente.db.scope import UnscopedQuery, scope_of, unscoped
from puente.db.session import Database
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_user,
    make_workspace,
)

# Tables that belong to no single workspace, and why. Anything else carries workspace_id.
NOT_WORKSPACE_OWNED = {
    "workspaces": "the workspaces themselves",
    "users": "a person may belong to several workspaces (memberships carry the workspace)",
    "recovery_codes": "a user's two-factor recovery codes, with the user",
    "login_attempts": "sign-in throttling by e-mail and address, before any workspace is known",
    "webhook_events": "raw webhooks are stored before Puente knows whose number they are for",
    "webhook_changes": "the parts of a raw webhook, processed before the channel is known",
    "app_contact_syncs": "a channel's contact-sync state, reached only through its channel",
    "history_chunks": "a channel's history import chunks, reached only through its channel",
}

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def test_every_table_is_workspace_owned_or_named_on_the_allow_list() -> None:
    unlisted = [
        t.name
        for t in Base.metadata.sorted_tables
        if "workspace_id" not in t.c and t.name not in NOT_WORKSPACE_OWNED
    ]
    assert unlisted == [], f"give these tables workspace_id or explain them: {unlisted}"
    tables = Base.metadata.tables
    stale = [n for n in NOT_WORKSPACE_OWNED if n in tables and "workspace_id" in tables[n].c]
    assert stale == [], f"these now carry workspace_id; take them off the list: {stale}"
    for mapper in Base.registry.mappers:
        owned = "workspace_id" in mapper.local_table.c
        marked = issubclass(mapper.class_, WorkspaceOwned)
        assert owned == marked, (
            f"{mapper.class_.__name__}: a class with workspace_id must be WorkspaceOwned "
            "(and only those), or the session cannot scope its queries"
        )


@pytest.fixture
def two_workspaces(db: Database) -> dict[str, int]:
    with db.unit_of_work(unscoped="test: two workspaces side by side") as s:
        ours, theirs = make_workspace(s, "Ours"), make_workspace(s, "Theirs")
        ids: dict[str, int] = {"ours": ours.id, "theirs": theirs.id}
        for name, ws in (("ours", ours), ("theirs", theirs)):
            channel = make_channel(s, ws)
            contact = make_contact(s, ws, name=f"{name} contact")
            conversation = make_conversation(s, channel, contact)
            make_message(s, conversation, timestamp=NOW, text=f"{name} message")
            ids[f"{name}_contact"] = contact.id
            ids[f"{name}_conversation"] = conversation.id
    return ids


def test_a_session_with_no_scope_cannot_query_workspace_tables(
    db: Database, two_workspaces: dict[str, int]
) -> None:
    with db.read() as s:
        # Tables that belong to nobody stay readable (sign-in looks users up by e-mail).
        assert s.scalar(select(func.count()).select_from(User)) == 0
        with pytest.raises(UnscopedQuery, match="Contact"):
            s.scalars(select(Contact)).all()
        # Reaching the table only through a join, a count or a subquery is caught too.
        with pytest.raises(UnscopedQuery, match="contacts"):
            s.scalar(select(func.count()).select_from(Contact))
        with pytest.raises(UnscopedQuery, match="conversations"):
            s.scalars(select(User.id).where(User.id.in_(select(Conversation.assignee_id)))).all()
        with pytest.raises(UnscopedQuery, match="Conversation"):
            s.get(Conversation, two_workspaces["ours_conversation"])
    with pytest.raises(UnscopedQuery), db.unit_of_work() as s:
        s.execute(update(Contact).values(name="everyone"))
    with db.read(unscoped="test: the rename above must not have happened") as s:
        assert "everyone" not in set(s.scalars(select(Contact.name)))


def test_a_scoped_session_sees_only_its_workspace_whatever_the_query_says(
    db: Database, two_workspaces: dict[str, int]
) -> None:
    ours, theirs = two_workspaces["ours"], two_workspaces["theirs"]
    with db.read(scope=ours) as s:
        assert [c.name for c in s.scalars(select(Contact))] == ["ours contact"]
        assert s.get(Contact, two_workspaces["theirs_contact"]) is None
        # A join into another table is scoped too, and so is a count.
        joined = s.scalars(
            select(Message.text).join(Conversation, Message.conversation_id == Conversation.id)
        ).all()
        assert joined == ["ours message"]
        assert s.scalar(select(func.count()).select_from(Message)) == 1
        # Even a query that names the other workspace outright finds nothing.
        assert s.scalars(select(Contact).where(Contact.workspace_id == theirs)).all() == []
    with db.unit_of_work(scope=ours) as s:
        assert s.execute(update(Contact).values(name="renamed")).rowcount == 1
        assert s.execute(delete(Message)).rowcount == 1
    with db.read(unscoped="test: what each workspace holds now") as s:
        names = dict(s.execute(select(Contact.workspace_id, Contact.name)).tuples().all())
        assert names == {ours: "renamed", theirs: "theirs contact"}
        assert list(s.scalars(select(Message.text))) == ["theirs message"]


def test_unscoped_lifts_the_scope_only_inside_its_block(
    db: Database, two_workspaces: dict[str, int]
) -> None:
    with db.read(scope=two_workspaces["ours"]) as s:
        before = scope_of(s)
        with unscoped(s, "test: look across workspaces"):
            assert s.scalar(select(func.count()).select_from(Contact)) == 2
        assert scope_of(s) == before
        assert s.scalar(select(func.count()).select_from(Contact)) == 1


def test_an_agents_session_sees_only_the_conversations_their_role_allows(
    db: Database, two_workspaces: dict[str, int]
) -> None:
    ours = two_workspaces["ours"]
    with db.unit_of_work(unscoped="test: an agent and two conversations") as s:
        from puente.accounts.models import Workspace

        workspace = s.get(Workspace, ours)
        assert workspace is not None
        agent = make_user(s, workspace, role="agent")
        other = make_user(s, workspace, role="agent")
        channel = make_channel(s, workspace)
        theirs_contact = make_contact(s, workspace, name="assigned to another agent")
        mine_contact = make_contact(s, workspace, name="assigned to me")
        hidden = make_conversation(s, channel, theirs_contact, assignee_id=other.id)
        make_message(s, hidden, timestamp=NOW, text="not for you")
        mine = make_conversation(s, channel, mine_contact, assignee_id=agent.id)
        make_message(s, mine, timestamp=NOW, text="for you")
        actor = load_member_actor(s, agent, ours)
        assert actor is not None
    with db.read(scope=actor_scope(actor)) as s:
        # An agent sees what is assigned to them and what nobody has picked up yet, never
        # what another agent holds.
        visible = set(s.scalars(select(Conversation.id)))
        assert visible == {mine.id, two_workspaces["ours_conversation"]}
        assert s.get(Conversation, hidden.id) is None
        # Messages reached through a join on conversations follow the same rule.
        texts = set(
            s.scalars(
                select(Message.text).join(Conversation, Message.conversation_id == Conversation.id)
            )
        )
        assert texts == {"for you", "ours message"}
        # Contacts are the workspace's, not the agent's: both are listed.
        assert {"assigned to me", "assigned to another agent"} <= set(
            s.scalars(select(Contact.name))
        )
