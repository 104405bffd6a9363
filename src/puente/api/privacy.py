"""REST API for data protection: export a contact as a zip, erase a contact, legal hold."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from puente.accounts import privacy, privacy_export
from puente.accounts.gate import token_actor
from puente.api.common import error_responses
from puente.api.deps import ApiCaller, RuntimeDep, SessionDep, scoped
from puente.request_session import writes

router = APIRouter(prefix="/contacts", tags=["privacy"])

ExportCaller = Annotated[ApiCaller, scoped("contacts:read")]
PrivacyCaller = Annotated[ApiCaller, scoped("privacy:write")]
ContactId = Annotated[int, Path(ge=1, le=2**62, description="the contact's id")]
# Exports stay in memory up to this size, then spill to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024


class LegalHoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_hold: bool = Field(description="true: retention skips the contact and erasure is refused")


class LegalHoldOut(BaseModel):
    contact_id: int
    legal_hold: bool


class ErasedOut(BaseModel):
    contact_id: int
    conversations: int
    messages: int
    media_rows: int
    media_files: int = Field(description="files removed from disk (shared files stay)")
    identities: int
    consent_events: int
    raw_events: int = Field(
        description="processed raw webhook bodies that named the contact, blanked"
    )


def stream_spool(spool: IO[bytes]) -> Iterator[bytes]:
    try:
        spool.seek(0)
        while chunk := spool.read(64 * 1024):
            yield chunk
    finally:
        spool.close()


@router.get(
    "/{contact_id}/export",
    summary="Export everything about a contact (zip)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "contact.json, conversations.json, messages.json, consent.json, "
            "media.json, notes.json (if any) and media/ files",
        },
        **error_responses(403, 404),
    },
)
@writes  # the export is audited
def export_contact(
    contact_id: ContactId, caller: ExportCaller, session: SessionDep, runtime: RuntimeDep
) -> StreamingResponse:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by stream_spool)
    try:
        privacy_export.do_export_contact(
            session,
            token_actor(caller.token),
            caller.workspace_id,
            contact_id,
            runtime.settings.data_dir / "media",
            spool,
        )
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(
        stream_spool(spool),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.zip"'},
    )


@router.delete(
    "/{contact_id}",
    response_model=ErasedOut,
    summary="Erase a contact and everything about it",
    responses=error_responses(403, 404, 409),
)
def erase_contact(
    contact_id: ContactId, caller: PrivacyCaller, session: SessionDep, runtime: RuntimeDep
) -> ErasedOut:
    counts = privacy.do_erase_contact(
        session,
        token_actor(caller.token),
        caller.workspace_id,
        contact_id,
        runtime.settings.data_dir / "media",
    )
    return ErasedOut(contact_id=contact_id, **counts.__dict__)


@router.put(
    "/{contact_id}/legal-hold",
    response_model=LegalHoldOut,
    summary="Place a contact under legal hold, or lift it",
    responses=error_responses(403, 404),
)
def set_legal_hold(
    contact_id: ContactId, body: LegalHoldIn, caller: PrivacyCaller, session: SessionDep
) -> LegalHoldOut:
    contact = privacy.do_set_legal_hold(
        session, token_actor(caller.token), caller.workspace_id, contact_id, body.legal_hold
    )
    return LegalHoldOut(contact_id=contact.id, legal_hold=contact.legal_hold)
