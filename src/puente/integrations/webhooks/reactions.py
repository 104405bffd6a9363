"""The domain events outgoing webhooks send, each turned into its public type and data
inside the transaction that published it (`puente.events.react`): the deliveries commit
with their cause or not at all.

Each reaction first asks which endpoints want the event (one query per workspace and
transaction, see `deliveries.subscribers`) and builds the data only when one does, from
the event and the rows it names, read in the same session.

Events that name a number (messages, conversations, broadcasts, the number itself) reach
endpoints filtered to that number; events about no number (contacts) reach every
endpoint that subscribes to their type."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.incoming import stored_in_session
from puente.conversations.models import Conversation, Message
from puente.events import (
    BroadcastProgress,
    ChannelConnectionChanged,
    ContactCreated,
    ContactErased,
    ContactMerged,
    ContactUpdated,
    ConversationAssigned,
    ConversationOpened,
    ConversationUpdated,
    MessageStatusChanged,
    MessageStored,
    MessageUpdated,
    WorkflowRunFinished,
    react,
)
from puente.integrations.webhooks.deliveries import enqueue, wanted
from puente.integrations.webhooks.models import WebhookAttempt, WebhookDelivery
from puente.outbound.models import Broadcast, BroadcastRecipient, BroadcastState

# Conversation changes that are agents' own bookkeeping, not news for another system: a
# new message moving it (None; message.created says it), read and unread marks.
_QUIET_CHANGES = frozenset({None, "read", "unread"})
T = TypeVar("T")
_FINISHED_BROADCAST = frozenset({BroadcastState.COMPLETED.value, BroadcastState.CANCELLED.value})


# -- what the payloads say ------------------------------------------------------------------


def contact_data(contact: Contact | None) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {
        "id": contact.id,
        "phone": contact.phone_e164,
        "wa_id": contact.wa_id,
        "name": contact.name or contact.profile_name,
    }


def message_data(session: Session, message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "wamid": message.wamid,
        "conversation_id": message.conversation_id,
        "channel_id": message.channel_id,
        "contact": contact_data(session.get(Contact, message.contact_id)),
        "direction": message.direction,
        "source": message.source,
        "type": message.type,
        "text": None if message.revoked else message.text,
        "status": message.status,
        "timestamp": message.timestamp.isoformat(),
    }


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "channel_id": conversation.channel_id,
        "contact_id": conversation.contact_id,
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "labels": list(conversation.labels or []),
    }


# -- messages -------------------------------------------------------------------------------


def _held(session: Session, model: type[T], id_: int) -> T | None:
    """`session.get`, looking in the session's identity map first: ingest has each
    message's conversation and contact loaded, and a look there is a dictionary lookup
    where `get` goes through the ORM's loading path (a statement's cache key, the
    session's execute events) before it finds the same object: two per message."""
    found = session.identity_map.get(identity_key(model, id_))
    if isinstance(found, model):
        return found
    return session.get(model, id_)


def _stored_data(session: Session, event: MessageStored) -> dict[str, Any] | None:
    """The message's data, from what this transaction stored when it is there (ingest
    writes messages without ORM objects: loading each row back would cost a query)."""
    fresh = stored_in_session(session, event.message_id)
    if fresh is None:
        message = session.get(Message, event.message_id)
        return None if message is None else message_data(session, message)
    conversation = _held(session, Conversation, event.conversation_id)
    contact_id = conversation.contact_id if conversation is not None else None
    contact = _held(session, Contact, contact_id) if contact_id is not None else None
    return {
        "id": event.message_id,
        "wamid": event.wamid,
        "conversation_id": event.conversation_id,
        "channel_id": event.channel_id,
        "contact": contact_data(contact),
        "direction": event.direction,
        "source": event.source,
        "type": event.type,
        "text": fresh.text,
        "status": event.status,
        "timestamp": fresh.timestamp.isoformat(),
    }


def _on_message_stored(session: Session, event: MessageStored) -> None:
    def build() -> dict[str, Any] | None:
        data = _stored_data(session, event)
        return None if data is None else {**data, "outbox_id": event.outbox_id}

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="message.created",
        build=build,
        conversation_id=event.conversation_id,
        channel_id=event.channel_id,
    )


def _on_message_status(session: Session, event: MessageStatusChanged) -> None:
    data = {
        "id": event.message_id,
        "wamid": event.wamid,
        "conversation_id": event.conversation_id,
        "channel_id": event.channel_id,
        "direction": event.direction,
        "source": event.source,
        "type": event.type,
        "change": "status",
        "status": event.status,
        "error": event.error,
        "at": event.at.isoformat(),
    }
    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="message.updated",
        data=data,
        conversation_id=event.conversation_id,
        channel_id=event.channel_id,
    )


def _on_message_updated(session: Session, event: MessageUpdated) -> None:
    if not wanted(session, event.workspace_id, "message.updated"):
        return  # no query for the number's filter when nobody listens
    message = session.get(Message, event.message_id)
    if message is None:
        return

    def build() -> dict[str, Any]:
        change = "revoked" if event.revoked else "edited" if event.edited else "media"
        data = {**message_data(session, message), "change": change}
        data["edited"], data["revoked"] = event.edited, event.revoked
        if event.media is not None:
            data["media"] = event.media.model_dump(mode="json")
        return data

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="message.updated",
        build=build,
        conversation_id=event.conversation_id,
        channel_id=message.channel_id,
    )


# -- conversations ------------------------------------------------------------------------


def _on_conversation_opened(session: Session, event: ConversationOpened) -> None:
    def build() -> dict[str, Any] | None:
        conversation = session.get(Conversation, event.conversation_id)
        if conversation is None:
            return None
        return {
            **conversation_data(conversation),
            "contact": contact_data(session.get(Contact, event.contact_id)),
            "reopened": event.reopened,
            "opened_by": event.source,
        }

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="conversation.created",
        build=build,
        conversation_id=event.conversation_id,
        channel_id=event.channel_id,
    )


def _conversation_type(event: ConversationUpdated) -> str | None:
    if isinstance(event, ConversationAssigned) or event.change == "assignment":
        return "conversation.assigned"
    if event.change == "status":
        return "conversation.status_changed"
    if event.change in _QUIET_CHANGES:
        return None
    return "conversation.updated"


def _on_conversation_updated(session: Session, event: ConversationUpdated) -> None:
    event_type = _conversation_type(event)
    if event_type is None:
        return

    def build() -> dict[str, Any]:
        conversation = session.get(Conversation, event.conversation_id)
        data = conversation_data(conversation) if conversation is not None else {}
        # What the event says wins: it is the state this change left.
        data.update(
            id=event.conversation_id,
            channel_id=event.channel_id,
            status=event.status,
            assignee_id=event.assignee_id,
            team_id=event.team_id,
            change=event.change,
        )
        return data

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type=event_type,
        build=build,
        conversation_id=event.conversation_id,
        channel_id=event.channel_id,
    )


# -- contacts -------------------------------------------------------------------------------


def _contact_payload(session: Session, contact_id: int) -> dict[str, Any] | None:
    contact = session.get(Contact, contact_id)
    data = contact_data(contact)
    if contact is None or data is None:
        return None
    return {
        **data,
        "profile_name": contact.profile_name,
        "sources": list(contact.sources or []),
        "custom_fields": dict(contact.custom_fields or {}),
    }


def _on_contact_created(session: Session, event: ContactCreated) -> None:
    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="contact.created",
        build=lambda: _contact_payload(session, event.contact_id),
    )


def _on_contact_updated(session: Session, event: ContactUpdated) -> None:
    def build() -> dict[str, Any] | None:
        data = _contact_payload(session, event.contact_id)
        return None if data is None else {**data, "changed": list(event.fields)}

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="contact.updated",
        build=build,
    )


def _on_contact_merged(session: Session, event: ContactMerged) -> None:
    def build() -> dict[str, Any] | None:
        data = _contact_payload(session, event.contact_id)
        return None if data is None else {**data, "merged_contact_id": event.merged_contact_id}

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="contact.merged",
        build=build,
    )


def forget_contact(session: Session, workspace_id: int, contact_id: int) -> int:
    """Delete every delivery that carries the contact's data (about its conversations, or
    about it), sent or not: an erased person must not live on in the delivery log."""
    conversations = select(Conversation.id).where(Conversation.contact_id == contact_id)
    about_contact = WebhookDelivery.payload["data"]["id"].as_integer() == contact_id
    doomed = select(WebhookDelivery.id).where(
        WebhookDelivery.workspace_id == workspace_id,
        or_(
            WebhookDelivery.conversation_id.in_(conversations),
            (WebhookDelivery.event_type.like("contact.%")) & about_contact,
        ),
    )
    ids = list(session.scalars(doomed))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(chunk)))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(chunk)))
    return len(ids)


def _on_contact_erased(session: Session, event: ContactErased) -> None:
    forget_contact(session, event.workspace_id, event.contact_id)
    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="contact.erased",
        data={"id": event.contact_id},
    )


# -- broadcasts, workflows, numbers --------------------------------------------------------


def _broadcast_data(session: Session, broadcast: Broadcast) -> dict[str, Any]:
    counts = dict(
        session.execute(
            select(BroadcastRecipient.state, func.count())
            .where(BroadcastRecipient.broadcast_id == broadcast.id)
            .group_by(BroadcastRecipient.state)
        ).tuples()
    )
    return {
        "id": broadcast.id,
        "name": broadcast.name,
        "channel_id": broadcast.channel_id,
        "template": broadcast.template_name,
        "state": broadcast.state,
        "total": broadcast.total,
        "recipients": counts,
        "started_at": broadcast.started_at.isoformat() if broadcast.started_at else None,
        "finished_at": broadcast.finished_at.isoformat() if broadcast.finished_at else None,
    }


def _on_broadcast_progress(session: Session, event: BroadcastProgress) -> None:
    if not wanted(session, event.workspace_id, "broadcast.progress", "broadcast.finished"):
        return
    broadcast = session.get(Broadcast, event.broadcast_id)
    if broadcast is None:
        return
    built: list[dict[str, Any]] = []

    def build() -> dict[str, Any]:
        if not built:  # one count of the recipients for both types
            built.append(_broadcast_data(session, broadcast))
        return built[0]

    finished = event.state in _FINISHED_BROADCAST
    for event_type in ("broadcast.progress", "broadcast.finished")[: 2 if finished else 1]:
        enqueue(
            session,
            workspace_id=event.workspace_id,
            event_type=event_type,
            build=build,
            channel_id=broadcast.channel_id,
        )


def _on_workflow_run_finished(session: Session, event: WorkflowRunFinished) -> None:
    if not wanted(session, event.workspace_id, "workflow_run.finished"):
        return
    conversation = (
        session.get(Conversation, event.conversation_id) if event.conversation_id else None
    )
    data = {
        "id": event.run_id,
        "workflow_id": event.workflow_id,
        "status": event.status,
        "contact_id": event.contact_id,
        "conversation_id": event.conversation_id,
        "error": event.error,
    }
    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="workflow_run.finished",
        data=data,
        channel_id=conversation.channel_id if conversation is not None else None,
    )


def _on_connection_changed(session: Session, event: ChannelConnectionChanged) -> None:
    def build() -> dict[str, Any]:
        channel = session.get(Channel, event.channel_id)
        return {
            "channel_id": event.channel_id,
            "phone_number": channel.display_phone_number if channel is not None else None,
            "name": channel.name if channel is not None else None,
            "connection_state": event.connection_state,
            "previous_state": event.previous_state,
            "reason": event.state_reason,
        }

    enqueue(
        session,
        workspace_id=event.workspace_id,
        event_type="channel.connection_changed",
        build=build,
        channel_id=event.channel_id,
    )


react(MessageStored, _on_message_stored)
react(MessageStatusChanged, _on_message_status)
react(MessageUpdated, _on_message_updated)
react(ConversationOpened, _on_conversation_opened)
react(ConversationUpdated, _on_conversation_updated)  # ConversationAssigned too
react(ContactCreated, _on_contact_created)
react(ContactUpdated, _on_contact_updated)
react(ContactMerged, _on_contact_merged)
react(ContactErased, _on_contact_erased)
react(BroadcastProgress, _on_broadcast_progress)
react(WorkflowRunFinished, _on_workflow_run_finished)
react(ChannelConnectionChanged, _on_connection_changed)
