"""Media files of messages: a Media row per file, downloaded later in the background.

Files are content-addressed: data_dir/media/<sha256[:2]>/<sha256>.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.conversations.incoming import MediaRef
from puente.conversations.models import Media
from puente.db.base import utcnow
from puente.db.bulk import insert_ignore
from puente.db.session import on_commit
from puente.jobs import MEDIA


class MediaState:
    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"


def create_media(session: Session, channel: Channel, items: Sequence[tuple[int, MediaRef]]) -> None:
    """A pending Media row per (message id, media); a media id seen before is kept once."""
    if not items:
        return
    now = utcnow()
    rows = [
        {
            "workspace_id": channel.workspace_id,
            "channel_id": channel.id,
            "message_id": message_id,
            "meta_media_id": ref.meta_media_id,
            "mime_type": ref.mime_type,
            "sha256": ref.sha256,
            "filename": ref.filename,
            "state": MediaState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for message_id, ref in items
        if ref.meta_media_id or ref.url
    ]
    if rows:
        session.execute(insert_ignore(session, Media, ["channel_id", "meta_media_id"]), rows)
        # Downloads start now instead of at the worker's next poll. Only this process's
        # worker: media rows are made by the ingest worker, and every process that runs it
        # runs a media worker too, so a NOTIFY on the webhook path would wake no one new.
        on_commit(session, MEDIA.wake)


def access_media(session: Session, workspace_id: int, media_id: int) -> Media | None:
    """A media row of this workspace, or None."""
    media = session.get(Media, media_id)
    if media is None or media.workspace_id != workspace_id:
        return None
    return media


def media_of_message(session: Session, workspace_id: int, message_id: int) -> list[Media]:
    return list(
        session.scalars(
            select(Media)
            .where(Media.workspace_id == workspace_id, Media.message_id == message_id)
            .order_by(Media.id)
        )
    )
