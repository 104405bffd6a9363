"""REST API for the knowledge-base bot: its entries (list, create, get, change, delete)
and its settings."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from puente.accounts.models import Workspace
from puente.api.common import error_responses
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.automation import kb
from puente.errors import NotFound

router = APIRouter(prefix="/kb", tags=["knowledge base"])

ReadCaller = Annotated[ApiCaller, scoped("automation:read")]
WriteCaller = Annotated[ApiCaller, scoped("automation:write")]
EntryId = Annotated[int, Path(ge=1, le=2**62, description="the entry's id in Puente")]


class EntryOut(BaseModel):
    id: int
    language: str = Field(description="es or en: the language its phrasings are matched in")
    phrasings: list[str] = Field(description="the ways a customer may ask, in order")
    answer: str = Field(description="what the bot sends")
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: kb.EntryView) -> EntryOut:
        e = view.entry
        return cls(
            id=e.id,
            language=e.language,
            phrasings=view.phrasings,
            answer=e.answer,
            enabled=e.enabled,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class EntryList(BaseModel):
    items: list[EntryOut]


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Any = Field(default="es", description="es or en")
    phrasings: Any = Field(
        description=f"1 to {kb.MAX_PHRASINGS} ways of asking, each at most {kb.MAX_PHRASING} "
        "characters"
    )
    answer: Any = Field(description=f"at most {kb.MAX_ANSWER} characters")
    enabled: Any = True


class EntryPatch(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    language: Any = None
    phrasings: Any = None
    answer: Any = None
    enabled: Any = None


class HandoffTexts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    es: str = Field(description="sent to a customer who writes in Spanish")
    en: str = Field(description="sent to a customer who writes in English")


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="the bot answers in every conversation it is not paused in")
    threshold: float = Field(description="the least score (0 to 1) an entry needs to be sent")
    max_unanswered: int = Field(
        description="questions in a row the bot could not answer before it hands over"
    )
    handoff: HandoffTexts = Field(description="what the customer is told at a handoff")


def _workspace(session: SessionDep, caller: ApiCaller) -> Workspace:
    workspace = session.get(Workspace, caller.workspace_id)
    if workspace is None:
        raise NotFound("no such workspace")
    return workspace


@router.get(
    "/entries",
    response_model=EntryList,
    summary="List the knowledge base's entries, oldest first",
    responses=error_responses(403),
)
def list_entries(caller: ReadCaller, session: SessionDep) -> EntryList:
    return EntryList(items=[EntryOut.of(v) for v in kb.list_entries(session, caller.workspace_id)])


@router.post(
    "/entries",
    response_model=EntryOut,
    status_code=201,
    summary="Add an entry",
    responses=error_responses(403),
)
def create_entry(body: EntryIn, caller: WriteCaller, session: SessionDep) -> EntryOut:
    data = kb.check_entry(**body.model_dump())
    return EntryOut.of(kb.do_create_entry(session, caller.workspace_id, data, caller.actor))


@router.get(
    "/entries/{entry_id}",
    response_model=EntryOut,
    summary="Get an entry",
    responses=error_responses(403, 404),
)
def get_entry(entry_id: EntryId, caller: ReadCaller, session: SessionDep) -> EntryOut:
    return EntryOut.of(kb.access_entry(session, caller.workspace_id, entry_id))


@router.patch(
    "/entries/{entry_id}",
    response_model=EntryOut,
    summary="Change an entry: its language, phrasings (all of them), answer or enabled",
    responses=error_responses(403, 404),
)
def update_entry(
    entry_id: EntryId, body: EntryPatch, caller: WriteCaller, session: SessionDep
) -> EntryOut:
    view = kb.access_entry(session, caller.workspace_id, entry_id)
    given = body.model_dump(exclude_unset=True)
    data = kb.check_entry(**{**view.data().as_json(), **given})
    return EntryOut.of(kb.do_update_entry(session, view, data, caller.actor))


@router.delete(
    "/entries/{entry_id}",
    status_code=204,
    summary="Delete an entry",
    responses=error_responses(403, 404),
)
def delete_entry(entry_id: EntryId, caller: WriteCaller, session: SessionDep) -> Response:
    view = kb.access_entry(session, caller.workspace_id, entry_id)
    kb.do_delete_entry(session, view, caller.actor)
    return Response(status_code=204)


@router.get(
    "/settings",
    response_model=SettingsBody,
    summary="The bot's settings",
    responses=error_responses(403),
)
def get_settings(caller: ReadCaller, session: SessionDep) -> SettingsBody:
    settings = kb.bot_settings(_workspace(session, caller))
    return SettingsBody.model_validate(settings.as_json())


@router.put(
    "/settings",
    response_model=SettingsBody,
    summary="Switch the bot on or off and set its threshold and handoff",
    responses=error_responses(403),
)
def put_settings(body: SettingsBody, caller: WriteCaller, session: SessionDep) -> SettingsBody:
    settings = kb.check_bot_settings(body.model_dump())
    kb.do_save_bot_settings(session, _workspace(session, caller), settings, caller.actor)
    return SettingsBody.model_validate(settings.as_json())
