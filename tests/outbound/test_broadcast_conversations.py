"""Queueing opens a conversation for each recipient who has none on the number. A
conversation someone opened between the lookup and the insert (a customer writing in at
that moment) is used as it is: never a second one, never a failed broadcast."""

from __future__ import annotations

from sqlalchemy import func, select

from puente.conversations.models import Conversation
from puente.db.base import utcnow
from puente.db.bulk_rows import db_time
from puente.db.session import Database
from puente.outbound.broadcasts.queue import _conversations
from puente.outbound.models import Broadcast
from tests.factories import make_channel, make_contact, make_conversation, make_workspace


def test_a_conversation_opened_since_the_lookup_is_used(db: Database) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workspace = make_workspace(session)
        channel = make_channel(session, workspace)
        contacts = [make_contact(session, workspace) for _ in range(4)]
        broadcast = Broadcast(
            workspace_id=workspace.id,
            channel_id=channel.id,
            name="aviso",
            template_name="aviso",
            template_language="es",
            template_category="UTILITY",
        )
        session.add(broadcast)
        session.flush()
        # Looked up with no conversation; then the second contact writes in.
        rows = [(i, c.id, {}, c.wa_id, None) for i, c in enumerate(contacts)]
        meanwhile = make_conversation(session, channel, contacts[1])
        found = _conversations(session, broadcast, channel.id, rows, db_time(session, utcnow()))
        assert set(found) == {c.id for c in contacts}
        assert found[contacts[1].id] == meanwhile.id
    with db.read(unscoped="test") as session:
        per_contact = dict(
            session.execute(
                select(Conversation.contact_id, func.count())
                .where(Conversation.channel_id == channel.id)
                .group_by(Conversation.contact_id)
            ).all()
        )
        assert per_contact == {c.id: 1 for c in contacts}
