"""Edits, revokes and media completions applied to stored messages, in any arrival order.

A message keeps its earlier versions in `Message.history`, oldest first; each entry
names the version (`wamid`, `at`, `kind`) and what replaced it (`replaced_by`,
`replaced_at`, `replaced_kind`). The current version is the message's own columns.
Applying a change rebuilds that sequence sorted by time, so a late edit lands in the
right place and a repeated one (same wamid) changes nothing. A change whose message
is not stored yet waits in PendingMessageOp until the message arrives.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.conversations.events import message_updated
from puente.conversations.incoming import MediaRef, preview_of
from puente.conversations.media import create_media
from puente.conversations.models import Conversation, Message, PendingMessageOp
from puente.db.bulk import insert_ignore
from puente.events import publish

PLACEHOLDER_TYPE = "media_placeholder"


@dataclass(frozen=True)
class Revision:
    """A change to the message `target_wamid`.

    kind "edit": the new type/content/text; "revoke": the message was deleted for
    everyone; "media": the media of a history placeholder (type/content/text/media).
    """

    target_wamid: str
    op_wamid: str
    kind: str
    timestamp: dt.datetime
    type: str | None = None
    content: dict[str, Any] | None = None
    text: str | None = None
    media: MediaRef | None = None

    @property
    def op_key(self) -> str:
        return f"{self.target_wamid}#media" if self.kind == "media" else self.op_wamid

    def to_payload(self) -> dict[str, Any]:
        media = self.media
        return {
            "op_wamid": self.op_wamid,
            "type": self.type,
            "content": self.content,
            "text": self.text,
            "media": None if media is None else media.__dict__,
        }

    @classmethod
    def from_op(cls, op: PendingMessageOp) -> Revision:
        payload = op.payload or {}
        media = payload.get("media")
        return cls(
            target_wamid=op.target_wamid,
            op_wamid=payload.get("op_wamid") or op.op_key,
            kind=op.kind,
            timestamp=op.timestamp,
            type=payload.get("type"),
            content=payload.get("content"),
            text=payload.get("text"),
            media=MediaRef(**media) if media else None,
        )


def apply_revisions(
    session: Session, channel: Channel, revisions: Sequence[Revision], *, emit_events: bool = True
) -> int:
    """Apply each revision to its message, or keep it until the message arrives.
    Returns how many messages changed."""
    if not revisions:
        return 0
    targets = {r.target_wamid for r in revisions}
    messages = {
        m.wamid: m
        for m in session.scalars(
            select(Message).where(
                Message.wamid.in_(targets), Message.workspace_id == channel.workspace_id
            )
        )
    }
    waiting = [r for r in revisions if r.target_wamid not in messages]
    if waiting:
        rows = [
            {
                "workspace_id": channel.workspace_id,
                "channel_id": channel.id,
                "target_wamid": r.target_wamid,
                "op_key": r.op_key,
                "kind": r.kind,
                "timestamp": r.timestamp,
                "payload": r.to_payload(),
            }
            for r in waiting
        ]
        session.execute(insert_ignore(session, PendingMessageOp, ["op_key"]), rows)
        known = _known_pending(session, channel)
        if known is not None:
            known.update(r.target_wamid for r in waiting)
    # Their conversations in one query: the previews below then come from the session.
    conversation_ids = {m.conversation_id for m in messages.values()}
    if conversation_ids:
        list(session.scalars(select(Conversation).where(Conversation.id.in_(conversation_ids))))
    changed = 0
    new_media: list[tuple[int, MediaRef]] = []
    for revision in sorted(revisions, key=lambda r: r.timestamp):
        message = messages.get(revision.target_wamid)
        if message is not None and _apply(session, channel, message, revision, new_media):
            changed += 1
            if emit_events:
                publish(session, message_updated(message))
    create_media(session, channel, new_media)
    return changed


_PENDING_KEY = "puente_pending_targets"


def _known_pending(session: Session, channel: Channel) -> set[str] | None:
    """On SQLite one process owns all writes, so the wamids with waiting changes can be
    read once per transaction instead of once per stored batch. None: always query."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    cache: dict[int, set[str]] = session.info.setdefault(_PENDING_KEY, {})
    if channel.id not in cache:
        cache[channel.id] = set(
            session.scalars(
                select(PendingMessageOp.target_wamid).where(
                    PendingMessageOp.channel_id == channel.id
                )
            )
        )
    return cache[channel.id]


def apply_pending_ops(
    session: Session, channel: Channel, ids_by_wamid: Mapping[str, int], *, emit_events: bool
) -> None:
    """Apply the changes that were waiting for these just-stored messages."""
    known = _known_pending(session, channel)
    if known is not None and known.isdisjoint(ids_by_wamid):
        return
    ops = list(
        session.scalars(
            select(PendingMessageOp)
            .where(PendingMessageOp.target_wamid.in_(list(ids_by_wamid)))
            .order_by(PendingMessageOp.timestamp, PendingMessageOp.id)
        )
    )
    if not ops:
        return
    messages = {
        m.id: m
        for m in session.scalars(
            select(Message).where(Message.id.in_({ids_by_wamid[op.target_wamid] for op in ops}))
        )
    }
    new_media: list[tuple[int, MediaRef]] = []
    for op in ops:
        message = messages[ids_by_wamid[op.target_wamid]]
        if _apply(session, channel, message, Revision.from_op(op), new_media) and emit_events:
            publish(session, message_updated(message))
    create_media(session, channel, new_media)
    session.execute(delete(PendingMessageOp).where(PendingMessageOp.id.in_([o.id for o in ops])))


def _apply(
    session: Session,
    channel: Channel,
    message: Message,
    revision: Revision,
    new_media: list[tuple[int, MediaRef]],
) -> bool:
    """Apply one revision; media to create is added to `new_media` for one insert."""
    if revision.kind == "media":
        changed = _complete_media(message, revision, new_media)
    else:
        changed = _add_version(message, revision)
    if changed:
        _refresh_preview(session, message)
    return changed


def _complete_media(message: Message, rev: Revision, new_media: list[tuple[int, MediaRef]]) -> bool:
    if message.type != PLACEHOLDER_TYPE or rev.type is None:
        return False  # completed already (the media webhook came twice)
    message.type = rev.type
    message.content = rev.content or {}
    message.text = rev.text
    if rev.media is not None:
        new_media.append((message.id, rev.media))
    return True


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _versions(message: Message) -> list[dict[str, Any]]:
    history = [dict(h) for h in message.history or []]
    if history:
        last = history[-1]
        current = {
            "wamid": last["replaced_by"],
            "at": last["replaced_at"],
            "kind": last["replaced_kind"],
        }
    else:
        current = {"wamid": message.wamid, "at": _iso(message.timestamp), "kind": "original"}
    current.update(type=message.type, content=message.content, text=message.text)
    for version in history:
        for key in ("replaced_by", "replaced_at", "replaced_kind"):
            version.pop(key, None)
    return [*history, current]


_KIND_ORDER = {"original": 0, "edit": 1, "revoke": 2}


def _add_version(message: Message, rev: Revision) -> bool:
    versions = _versions(message)
    if any(v["wamid"] == rev.op_wamid for v in versions):
        return False
    previous = versions[-1]
    if rev.kind == "revoke":
        version = {"type": previous["type"], "content": {}, "text": None}
    else:
        version = {"type": rev.type or previous["type"], "content": rev.content or {}}
        version["text"] = rev.text
    version.update(wamid=rev.op_wamid, at=_iso(rev.timestamp), kind=rev.kind)
    versions.append(version)
    # The original stays first and a revoke last, whatever the clocks say.
    versions.sort(key=lambda v: (_KIND_ORDER.get(v["kind"], 1), v["at"]))
    history = []
    for older, newer in itertools.pairwise(versions):
        entry = dict(older)
        entry.update(
            replaced_by=newer["wamid"], replaced_at=newer["at"], replaced_kind=newer["kind"]
        )
        history.append(entry)
    current = versions[-1]
    message.type = current["type"]
    message.content = current["content"]
    message.text = current["text"]
    message.history = history
    message.edited = any(v["kind"] == "edit" for v in versions)
    message.revoked = any(v["kind"] == "revoke" for v in versions)
    return True


def _refresh_preview(session: Session, message: Message) -> None:
    conversation = session.get(Conversation, message.conversation_id)
    if conversation is not None and conversation.last_message_id == message.id:
        conversation.last_message_preview = preview_of(message)
