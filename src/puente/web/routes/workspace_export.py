"""The owner's "Export workspace" button (on the privacy page): the whole workspace as a
portable archive, downloaded while it is written (docs/export.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from puente.accounts.permissions import Perm
from puente.portability.export import stream_workspace_export
from puente.web.deps import RuntimeDep, WebContext, require_permission

router = APIRouter(include_in_schema=False)
# Everything the workspace holds leaves with the file: only its owners may (the matrix
# gives workspace.export to no other role, and no override can).
Owner = Annotated[WebContext, Depends(require_permission(Perm.WORKSPACE_EXPORT))]


@router.post("/settings/workspace/export")
def export_workspace(runtime: RuntimeDep, me: Owner) -> Response:
    stream = stream_workspace_export(
        runtime.db, me.actor.workspace_id, runtime.settings.data_dir, actor=me.actor.label
    )
    return StreamingResponse(
        stream,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{me.workspace.slug}.zip"'},
    )
