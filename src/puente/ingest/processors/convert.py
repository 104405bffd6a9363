"""Translating wire messages (whatsapp.webhooks) into the domain's NewMessage, Revision
and StatusUpdate. The only place where both Meta's field names and our columns meet."""

from __future__ import annotations

import datetime as dt
from typing import Any

from puente.contacts.resolve import Person
from puente.conversations.edits import Revision
from puente.conversations.incoming import MediaRef, NewMessage
from puente.conversations.models import MessageStatus
from puente.conversations.statuses import StatusUpdate
from puente.whatsapp import webhooks as wire

# Types whose object Puente stores as is; anything else becomes "unsupported" with the
# raw message kept. "template" appears in echoes of templates sent from other tools.
KNOWN_TYPES = frozenset({*wire.TYPED_OBJECTS, "contacts", "template", "media_placeholder"})
REVISION_TYPES = frozenset({"edit", "revoke"})

HISTORY_STATUS = {
    "SENT": MessageStatus.SENT,
    "DELIVERED": MessageStatus.DELIVERED,
    "READ": MessageStatus.READ,
    "PLAYED": MessageStatus.PLAYED,
    "ERROR": MessageStatus.FAILED,
    "PENDING": MessageStatus.SENDING,
}


def from_unix(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def text_of(type_: str, obj: Any) -> str | None:
    """The words of a message for previews and search."""
    if type_ == "contacts" and isinstance(obj, list):
        names = [
            _str((c.get("name") or {}).get("formatted_name")) for c in obj if isinstance(c, dict)
        ]
        return ", ".join(n for n in names if n) or None
    if not isinstance(obj, dict):
        return None
    if type_ == "text":
        return _str(obj.get("body"))
    if type_ in wire.MEDIA_TYPES:
        return _str(obj.get("caption")) or _str(obj.get("filename"))
    if type_ == "location":
        return _str(obj.get("name")) or _str(obj.get("address"))
    if type_ == "interactive":
        return _interactive_text(obj)
    if type_ == "button":
        return _str(obj.get("text")) or _str(obj.get("payload"))
    if type_ == "reaction":
        return _str(obj.get("emoji"))
    if type_ in ("order", "system"):
        return _str(obj.get("text")) or _str(obj.get("body"))
    if type_ == "template":
        return _str(obj.get("name"))
    return None


def _interactive_text(obj: dict[str, Any]) -> str | None:
    kind = obj.get("type")
    reply = obj.get(kind) if isinstance(kind, str) else None
    if isinstance(reply, dict):  # button_reply, list_reply, nfm_reply
        return _str(reply.get("title")) or _str(reply.get("body"))
    body = obj.get("body")  # the send-API shape, seen in echoes
    return _str(body.get("text")) if isinstance(body, dict) else None


def media_of(type_: str, obj: Any) -> MediaRef | None:
    if type_ not in wire.MEDIA_TYPES or not isinstance(obj, dict):
        return None
    if not obj.get("id") and not obj.get("url"):
        return None
    return MediaRef(
        meta_media_id=_str(obj.get("id")),
        mime_type=_str(obj.get("mime_type")),
        sha256=_str(obj.get("sha256")),
        filename=_str(obj.get("filename")),
        url=_str(obj.get("url")),
    )


def person_for_inbound(message: wire.Message, contacts: list[wire.WebhookContact]) -> Person:
    """The sender, with the profile Meta sent next to the message."""
    match = None
    for contact in contacts:
        same_wa = bool(contact.wa_id) and contact.wa_id == message.from_
        same_user = bool(contact.user_id) and contact.user_id == message.from_user_id
        if same_wa or same_user:
            match = contact
            break
    if match is None and len(contacts) == 1:
        match = contacts[0]
    wa_id = message.from_ or (match.wa_id if match else None) or None
    return Person(
        wa_id=wa_id,
        bsuid=message.from_user_id or (match.user_id if match else None),
        parent_bsuid=match.parent_user_id if match else None,
        username=match.username if match else None,
        profile_name=match.profile.name if match and match.profile else None,
    )


def new_message(
    raw: dict[str, Any],
    message: wire.Message,
    *,
    person: Person,
    direction: str,
    source: str,
    status: str,
) -> NewMessage:
    type_ = message.type
    obj = raw.get(type_)
    error = raw["errors"][0] if raw.get("errors") else None
    keep_raw: dict[str, Any] | None = None
    if type_ not in KNOWN_TYPES:
        # Not understood yet: keep everything so nothing Meta sent is lost.
        keep_raw, type_, obj = raw, "unsupported", {"type": message.type}
    elif type_ == "unsupported":
        keep_raw = raw
    content = obj if isinstance(obj, dict) else ({"items": obj} if obj is not None else {})
    context = raw.get("context")
    return NewMessage(
        wamid=message.id,
        person=person,
        direction=direction,
        source=source,
        type=type_,
        content=content,
        text=text_of(type_, obj),
        timestamp=from_unix(message.timestamp),
        status=status,
        reply_to_wamid=_reply_target(message),
        context=context if isinstance(context, dict) else None,
        referral=raw.get("referral"),
        error=error,
        raw=keep_raw,
        media=media_of(type_, obj),
    )


def _reply_target(message: wire.Message) -> str | None:
    if message.type == "reaction" and message.reaction is not None:
        return message.reaction.message_id
    if message.context is not None and message.context.id:
        return message.context.id
    return None


def revision_of(message: wire.Message) -> Revision | None:
    """An edit or revoke as a change to its original message."""
    timestamp = from_unix(message.timestamp)
    if message.type == "revoke" and message.revoke is not None:
        return Revision(message.revoke.original_message_id, message.id, "revoke", timestamp)
    if message.type == "edit" and message.edit is not None:
        inner = message.edit.message or {}
        type_ = str(inner.get("type") or "text")
        obj = inner.get(type_)
        return Revision(
            target_wamid=message.edit.original_message_id,
            op_wamid=message.id,
            kind="edit",
            timestamp=timestamp,
            type=type_,
            content=obj if isinstance(obj, dict) else {},
            text=text_of(type_, obj),
        )
    return None


def media_completion(raw: dict[str, Any], message: wire.Message) -> Revision:
    """The later `history` webhook that carries a placeholder's media."""
    obj = raw.get(message.type)
    return Revision(
        target_wamid=message.id,
        op_wamid=message.id,
        kind="media",
        timestamp=from_unix(message.timestamp),
        type=message.type,
        content=obj if isinstance(obj, dict) else {},
        text=text_of(message.type, obj),
        media=media_of(message.type, obj),
    )


def status_update(raw: dict[str, Any], status: wire.Status) -> StatusUpdate:
    return StatusUpdate(
        wamid=status.id,
        status=status.status,
        timestamp=from_unix(status.timestamp),
        recipient_id=status.recipient_id or status.recipient_user_id,
        errors=raw.get("errors") or None,
        pricing=raw.get("pricing"),
        callback_data=status.biz_opaque_callback_data,
    )
