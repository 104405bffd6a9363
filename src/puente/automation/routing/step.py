"""Routing's part in reacting to what happens: a customer's conversation joins its number's
team queue, and whatever may let a queue move (a conversation closed or handed over, an
agent coming online) wakes the routing worker once the change commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.conversations.models import Conversation
from puente.events import ConversationUpdated, MessageStored, PresenceChanged, react
from puente.jobs import ROUTING


def route_customer_message(session: Session, event: MessageStored) -> None:
    """A customer wrote into a conversation nobody has: on a number with a default team,
    the conversation joins that team's queue (unless it is in a team already) and the
    routing worker looks at it after commit. The number and the conversation are already
    in the session, so a number without a default team costs no statement."""
    channel = session.get(Channel, event.channel_id)
    if channel is None or channel.default_team_id is None:
        return
    conversation = session.get(Conversation, event.conversation_id)
    if conversation is None or conversation.assignee_id is not None:
        return
    if conversation.team_id is None:
        conversation.team_id = channel.default_team_id
    ROUTING.wake_after_commit(session)


def _on_conversation_updated(session: Session, event: ConversationUpdated) -> None:
    # Closing, reopening or snoozing an assigned conversation changes its agent's load;
    # a hand-over changes two agents' loads or puts a conversation in a team's queue.
    if event.change == "assignment" or (event.change == "status" and event.assignee_id):
        ROUTING.wake_after_commit(session)


def _on_presence_changed(session: Session, event: PresenceChanged) -> None:
    if event.availability == "online":
        ROUTING.wake_after_commit(session)


react(ConversationUpdated, _on_conversation_updated)
react(PresenceChanged, _on_presence_changed)
