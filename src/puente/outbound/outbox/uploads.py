"""Attachments queued before their upload to Meta. Their message carries a placeholder
media id; when the lane's turn comes it uploads the stored file (POST /{phone_number_id}/
media), puts Meta's id in the placeholder's place and sends as usual. An upload that Meta
refuses is retried or fails the message under the outbox's rules, like a refused send."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.conversations.media_worker import media_path
from puente.conversations.models import Media, Message
from puente.outbound.models import OutboxItem
from puente.outbound.outbox.lanes import Claimed
from puente.whatsapp.errors import MediaError

# Meta's media ids are digits: no id Meta gives can be mistaken for one of these, and the
# Graph API refuses one that reached it by mistake instead of sending something else.
PLACEHOLDER = "puente-upload:"
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


def pending_media_id(sha256: str) -> str:
    return PLACEHOLDER + sha256


@dataclass(frozen=True)
class Upload:
    placeholder: str
    sha256: str
    mime_type: str
    filename: str

    def read(self, data_dir: Path) -> bytes:
        path = media_path(data_dir, self.sha256)
        if not path.is_file():
            # Not Meta's doing, but as final as Meta refusing the file: the message fails
            # with the reason instead of waiting for a file that will not come back.
            raise MediaError("the attached file is no longer in Puente's media store")
        return path.read_bytes()


def placeholder_of(item: Claimed) -> str | None:
    """The placeholder media id of a claimed attachment still to upload, else None."""
    if PLACEHOLDER not in item.payload_json:  # the hot path: no parsing for other sends
        return None
    kind = item.message_event.get("type")
    if kind not in MEDIA_TYPES:
        return None
    media_id = (json.loads(item.payload_json).get(kind) or {}).get("id")
    return media_id if isinstance(media_id, str) and media_id.startswith(PLACEHOLDER) else None


def load_upload(session: Session, item: Claimed, placeholder: str) -> Upload:
    sha256 = placeholder.removeprefix(PLACEHOLDER)
    media = session.scalar(
        select(Media).where(Media.message_id == item.message_id, Media.sha256 == sha256)
    )
    if media is None:
        raise MediaError("the attached file is no longer in Puente's media store")
    return Upload(placeholder, sha256, media.mime_type or "", media.filename or "file")


def with_media_id(item: Claimed, placeholder: str, media_id: str) -> Claimed:
    """The claim as it is sent: Meta's media id where the placeholder was."""
    payload = item.payload_json.replace(json.dumps(placeholder), json.dumps(media_id))
    return dataclasses.replace(item, payload_json=payload)


def record_uploaded(session: Session, item: Claimed, placeholder: str, media_id: str) -> None:
    """Keep Meta's media id: a retried send uses it instead of uploading again (Meta keeps
    an upload for 30 days), and the message shows what was sent."""
    kind = str(item.message_event["type"])
    outbox = session.get(OutboxItem, item.id)
    if outbox is not None:
        outbox.payload = {**outbox.payload, kind: _swapped(outbox.payload[kind], media_id)}
    message = session.get(Message, item.message_id)
    if message is not None and message.content.get("id") == placeholder:
        message.content = _swapped(message.content, media_id)
    media = session.scalar(
        select(Media).where(
            Media.message_id == item.message_id,
            Media.sha256 == placeholder.removeprefix(PLACEHOLDER),
        )
    )
    if media is not None:
        media.meta_media_id = media_id


def _swapped(wire: dict[str, Any], media_id: str) -> dict[str, Any]:
    return {**wire, "id": media_id}
