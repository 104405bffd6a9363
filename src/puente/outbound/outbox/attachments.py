"""Files agents attach to a reply: Meta's types and sizes per kind (protocol §8), checked
before anything is stored or queued; then the message is queued in the outbox like any
other and the file kept in the content-addressed media store. The lane uploads it to the
Graph API when the message's turn comes and sends it by media id (see `uploads`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from puente.conversations.collab import user_error
from puente.conversations.media import MediaState
from puente.conversations.media_worker import media_path
from puente.conversations.models import Media, Message, MessageSource
from puente.db.base import utcnow
from puente.errors import InvalidInput
from puente.outbound.outbox.service import do_queue_message
from puente.outbound.outbox.uploads import pending_media_id

KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class Kind:
    name: str  # the WhatsApp message type
    types: frozenset[str]
    max_bytes: int
    caption: bool  # Meta takes a caption on image, video and document only
    label: str  # what the limit is called in messages to people


# Sticker sizes depend on animation: 100 KB static, 500 KB animated (checked on the bytes).
STICKER_STATIC_MAX = 100 * KB
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("image", frozenset({"image/jpeg", "image/png"}), 5 * MB, True, "5 MB"),
        Kind("video", frozenset({"video/mp4", "video/3gpp"}), 16 * MB, True, "16 MB"),
        Kind(
            "audio",
            frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
            16 * MB,
            False,
            "16 MB",
        ),
        Kind(
            "document",
            frozenset(
                {
                    "text/plain",
                    "application/pdf",
                    "application/msword",
                    "application/vnd.ms-excel",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                }
            ),
            100 * MB,
            True,
            "100 MB",
        ),
        Kind("sticker", frozenset({"image/webp"}), 500 * KB, False, "100 KB / 500 KB"),
    )
}
# Browsers name some of these types differently, or not at all: the file's extension decides
# then. Anything not listed here is refused.
BY_EXTENSION = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".3gp": "video/3gpp",
    ".aac": "audio/aac",
    ".amr": "audio/amr",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".webp": "image/webp",
}
# The first bytes of the types a renamed file most often pretends to be; Meta refuses a
# PNG that is really something else, so it is refused here first.
MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF",),
}


@dataclass(frozen=True)
class Attachment:
    kind: Kind
    mime_type: str
    filename: str
    data: bytes
    caption: str | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def kind_of_type(mime_type: str) -> Kind | None:
    for kind in KINDS.values():
        if mime_type in kind.types:
            return kind
    return None


def mime_type_of(filename: str, declared: str) -> str:
    """The type the file is sent as: the extension's when known, else what the browser said."""
    extension = Path(filename).suffix.lower()
    return BY_EXTENSION.get(extension) or declared.split(";")[0].strip().lower()


def _webp_is_animated(data: bytes) -> bool:
    # An extended WebP ("VP8X" chunk) carries the animation flag in its first flags byte.
    return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)


def _looks_like(mime_type: str, data: bytes) -> bool:
    if mime_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    prefixes = MAGIC.get(mime_type)
    return prefixes is None or data.startswith(prefixes)


def check_attachment(
    filename: str, declared_type: str, data: bytes, caption: str | None
) -> Attachment:
    """The file as it will be sent, or a refusal people can read (nothing stored yet)."""
    name = Path(filename.replace("\\", "/")).name.strip()[:240] or "file"
    mime_type = mime_type_of(name, declared_type)
    kind = kind_of_type(mime_type)
    if kind is None or not _looks_like(mime_type, data):
        raise user_error(
            InvalidInput,
            "WhatsApp does not accept this type of file (%(name)s). Send JPEG or PNG images, "
            "MP4 or 3GP videos, AAC, AMR, MP3, M4A or OGG audio, PDF, Office or text "
            "documents, or WebP stickers.",
            name=name,
        )
    if not data:
        raise user_error(InvalidInput, "The file %(name)s is empty.", name=name)
    limit = kind.max_bytes
    if kind.name == "sticker" and not _webp_is_animated(data):
        limit = STICKER_STATIC_MAX
    if len(data) > limit:
        raise user_error(
            InvalidInput,
            "The file %(name)s is too big: WhatsApp takes files of this type up to %(limit)s.",
            name=name,
            limit=kind.label,
        )
    text = (caption or "").strip() or None
    if text and not kind.caption:
        raise user_error(InvalidInput, "Audio and stickers cannot carry a caption.")
    if text and len(text) > 1024:
        raise user_error(InvalidInput, "The caption is too long (at most 1,024 characters).")
    return Attachment(kind, mime_type, name, data, text)


def limits_for_browser() -> dict[str, Any]:
    """The same limits for the composer's instant check (the server's check still decides)."""
    return {
        "kinds": {
            k.name: {"types": sorted(k.types), "max": k.max_bytes, "caption": k.caption}
            for k in KINDS.values()
        },
        "extensions": BY_EXTENSION,
        "sticker_static": STICKER_STATIC_MAX,
    }


def store_file(data_dir: Path, attachment: Attachment) -> str:
    """Keep the bytes in the content-addressed media store; returns their sha256."""
    sha = attachment.sha256
    final = media_path(data_dir, sha)
    if final.is_file() and final.stat().st_size == len(attachment.data):
        return sha  # the same bytes are stored already
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".upload-")
    with os.fdopen(fd, "wb") as out:
        out.write(attachment.data)
    os.replace(tmp, final)  # atomic: a reader never sees half a file
    return sha


def do_queue_attachment(
    session: Session,
    data_dir: Path,
    *,
    workspace_id: int,
    conversation_id: int,
    attachment: Attachment,
    reply_to: str | None,
    sender_user_id: int,
    actor: Any,
) -> Message:
    """Queue the attachment's message and keep its file, in the caller's unit of work. The
    message waits in its lane like any other; nothing is uploaded here."""
    message = do_queue_message(
        session,
        workspace_id=workspace_id,
        message_type=attachment.kind.name,
        content=_pending_wire(attachment),
        conversation_id=conversation_id,
        reply_to=reply_to,
        source=MessageSource.AGENT,
        sender_user_id=sender_user_id,
        actor=actor,
    )
    _record_attachment(session, message, attachment)
    # After the checks above: a refused message leaves nothing in the store.
    store_file(data_dir, attachment)
    return message


def _pending_wire(attachment: Attachment) -> dict[str, Any]:
    """The message object, its media id a placeholder until the lane has uploaded the file
    (caption and filename where Meta takes them)."""
    wire: dict[str, Any] = {"id": pending_media_id(attachment.sha256)}
    if attachment.caption:
        wire["caption"] = attachment.caption
    if attachment.kind.name == "document":
        wire["filename"] = attachment.filename
    return wire


def _record_attachment(session: Session, message: Message, attachment: Attachment) -> Media:
    """The stored file of an outgoing message, shown in the conversation at once; Meta's
    media id is added once the lane has uploaded it."""
    media = Media(
        workspace_id=message.workspace_id,
        channel_id=message.channel_id,
        message_id=message.id,
        meta_media_id=None,
        mime_type=attachment.mime_type,
        sha256=attachment.sha256,
        file_size=len(attachment.data),
        filename=attachment.filename,
        state=MediaState.STORED,
        attempts=0,
        next_attempt_at=None,
        created_at=utcnow(),
    )
    session.add(media)
    session.flush()
    return media
