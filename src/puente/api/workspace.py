"""REST API: who am I (the token's workspace)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from puente.accounts.models import Workspace
from puente.api.deps import CallerDep, SessionDep

router = APIRouter(tags=["workspace"])


class WorkspaceOut(BaseModel):
    id: int
    name: str
    slug: str
    timezone: str
    token_scopes: list[str]


@router.get("/workspace", response_model=WorkspaceOut, summary="The workspace of the calling token")
def get_workspace(caller: CallerDep, session: SessionDep) -> WorkspaceOut:
    ws = session.get(Workspace, caller.workspace_id)
    assert ws is not None  # tokens are deleted with their workspace
    return WorkspaceOut(
        id=ws.id,
        name=ws.name,
        slug=ws.slug,
        timezone=ws.timezone,
        token_scopes=list(caller.token.scopes),
    )
