"""REST API for message media: what a message's files are, and the stored files themselves."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, RuntimeDep, SessionDep, scoped
from puente.conversations.media import MediaState, access_media, media_of_message
from puente.conversations.media_worker import media_path
from puente.conversations.models import Media
from puente.errors import NotFound

router = APIRouter(prefix="/media", tags=["media"])

MessagesCaller = Annotated[ApiCaller, scoped("messages:read")]
MediaId = Annotated[int, Path(ge=1, le=2**62, description="the media's id")]
# Types a browser shows without running anything; everything else is sent as a download.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


class MediaOut(BaseModel):
    id: int
    message_id: int | None
    state: str = Field(description="pending (being downloaded) | stored | failed")
    mime_type: str | None
    filename: str | None
    file_size: int | None = Field(description="bytes; known once stored")
    sha256: str | None = Field(description="hex SHA-256 of the stored file")
    attempts: int = Field(description="failed download attempts so far")
    last_error: str | None = Field(description="why the last attempt failed, in plain words")
    next_attempt_at: dt.datetime | None
    file_url: str | None = Field(description="where to GET the file once stored")

    @classmethod
    def of(cls, m: Media) -> MediaOut:
        return cls(
            id=m.id,
            message_id=m.message_id,
            state=m.state,
            mime_type=m.mime_type,
            filename=m.filename,
            file_size=m.file_size,
            sha256=m.sha256 if m.state == MediaState.STORED else None,
            attempts=m.attempts,
            last_error=m.last_error,
            next_attempt_at=m.next_attempt_at,
            file_url=f"/api/v1/media/{m.id}" if m.state == MediaState.STORED else None,
        )


@router.get(
    "",
    response_model=list[MediaOut],
    summary="The media files of a message and whether they are downloaded",
    responses=error_responses(403),
)
def list_media(
    caller: MessagesCaller,
    session: SessionDep,
    message_id: Annotated[int, Query(ge=1, le=2**62)],
) -> list[MediaOut]:
    return [MediaOut.of(m) for m in media_of_message(session, caller.workspace_id, message_id)]


@router.get(
    "/{media_id}",
    summary="Download a stored media file",
    response_class=FileResponse,
    responses={
        **error_responses(403, 404),
        200: {"description": "the file's bytes, with its MIME type"},
    },
)
def get_media_file(
    caller: MessagesCaller, session: SessionDep, runtime: RuntimeDep, media_id: MediaId
) -> FileResponse:
    media = access_media(session, caller.workspace_id, media_id)
    if media is None:
        raise NotFound("no such media")
    if media.state != MediaState.STORED or not media.sha256:
        raise NotFound(
            "this file has not been downloaded"
            + (" yet" if media.state == MediaState.PENDING else f": {media.last_error}"),
            code="media_not_stored",
            details={"state": media.state},
        )
    path = media_path(runtime.settings.data_dir, media.sha256)
    if not path.is_file():
        raise NotFound("this file is no longer stored", code="media_not_stored")
    mime = (media.mime_type or "application/octet-stream").split(";")[0].strip().lower()
    disposition = "inline" if mime in INLINE_TYPES else "attachment"
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"}
    if not media.filename:
        headers["Content-Disposition"] = disposition  # FileResponse sets it only with a name
    return FileResponse(
        path,
        media_type=media.mime_type or "application/octet-stream",
        filename=media.filename or None,
        content_disposition_type=disposition,
        headers=headers,
    )
