"""REST API: the whole workspace as a portable archive (docs/export.md), streamed as it is
written. The archive holds everything the workspace has, so the token must be able to
read all of it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from puente.accounts.gate import token_actor
from puente.accounts.models import Workspace
from puente.api.common import error_responses
from puente.api.deps import CallerDep, RuntimeDep, SessionDep
from puente.portability.export import stream_workspace_export

router = APIRouter(tags=["workspace"])

# Every kind the archive carries, read.
EXPORT_SCOPES = (
    "settings:read",
    "channels:read",
    "contacts:read",
    "conversations:read",
    "messages:read",
    "templates:read",
    "automation:read",
    "reports:read",
)


@router.get(
    "/workspace/export",
    summary="Export the whole workspace (a zip archive for `puente import`)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "manifest.json, data/<kind>.jsonl and media/<sha256> files "
            "(docs/export.md). Sent while it is written: a transfer cut short lacks the "
            "manifest, and `puente import` refuses it.",
        },
        **error_responses(403),
    },
)
def export_workspace(
    caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> StreamingResponse:
    for scope in EXPORT_SCOPES:
        caller.require(scope)
    ws = session.get(Workspace, caller.workspace_id)
    assert ws is not None  # tokens are deleted with their workspace
    stream = stream_workspace_export(
        runtime.db,
        caller.workspace_id,
        runtime.settings.data_dir,
        actor=token_actor(caller.token).label,
    )
    return StreamingResponse(
        stream,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{ws.slug}.zip"'},
    )
