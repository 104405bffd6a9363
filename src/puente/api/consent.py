"""REST API for a contact's marketing consent: the current state and its history."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from puente.api.common import error_responses, invalid_field
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.contacts import consent
from puente.contacts.models import ConsentEvent
from puente.contacts.service import access_contact

router = APIRouter(prefix="/contacts", tags=["consent"])

ReadCaller = Annotated[ApiCaller, scoped("contacts:read")]
WriteCaller = Annotated[ApiCaller, scoped("contacts:write")]
ContactId = Annotated[int, Path(ge=1, le=2**62, description="the contact's id")]


class ConsentEventOut(BaseModel):
    id: int
    kind: str = Field(description="opt_in or opt_out")
    scope: str
    source: str = Field(description="keyword, meta_131050, api, agent, web_form, import, cli")
    by: str | None = Field(description="who recorded it: a user id, an API token, the customer")
    note: str | None
    message_id: int | None = Field(description="the message that carried it, if any")
    at: dt.datetime

    @classmethod
    def of(cls, e: ConsentEvent) -> ConsentEventOut:
        by = e.by_label or (f"user {e.by_user_id}" if e.by_user_id else None)
        return cls(
            id=e.id,
            kind=e.kind,
            scope=e.scope,
            source=e.source,
            by=by,
            note=e.note,
            message_id=e.message_id,
            at=e.at,
        )


class ConsentOut(BaseModel):
    contact_id: int
    scope: str
    state: str | None = Field(
        description="opt_in, opt_out, or null when nothing was recorded (marketing allowed"
        " unless the workspace requires an opt-in)"
    )
    since: dt.datetime | None
    source: str | None
    marketing_allowed: bool
    events: list[ConsentEventOut] = Field(description="the full history, newest first")


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["opt_in", "opt_out"]
    scope: Literal["marketing"] = "marketing"
    source: str = Field(
        default="api",
        min_length=1,
        max_length=32,
        description="how consent was given, e.g. web_form, checkout, import",
    )
    note: str | None = Field(default=None, max_length=500)
    at: dt.datetime | None = Field(
        default=None, description="when it was given (with a time zone); default now"
    )


def _out(session: SessionDep, workspace_id: int, contact_id: int) -> ConsentOut:
    view = consent.access_consent(session, workspace_id, contact_id)
    try:
        consent.check_marketing_consent(session, contact_id)
        allowed = True
    except consent.OptedOut:
        allowed = False
    return ConsentOut(
        contact_id=view.contact_id,
        scope=view.scope,
        state=view.state,
        since=view.since,
        source=view.source,
        marketing_allowed=allowed,
        events=[ConsentEventOut.of(e) for e in view.events],
    )


@router.get(
    "/{contact_id}/consent",
    response_model=ConsentOut,
    summary="A contact's marketing consent and its history",
    responses=error_responses(403, 404),
)
def get_consent(contact_id: ContactId, caller: ReadCaller, session: SessionDep) -> ConsentOut:
    return _out(session, caller.workspace_id, contact_id)


@router.post(
    "/{contact_id}/consent",
    response_model=ConsentOut,
    status_code=201,
    summary="Record an opt-in or opt-out",
    responses=error_responses(403, 404),
)
def record_consent(
    contact_id: ContactId, body: ConsentIn, caller: WriteCaller, session: SessionDep
) -> ConsentOut:
    contact = access_contact(session, caller.workspace_id, contact_id)
    if body.at is not None and body.at.tzinfo is None:
        raise invalid_field("at", "give a time zone, e.g. 2026-05-01T10:00:00Z")
    consent.do_record_consent(
        session,
        contact=contact,
        kind=body.kind,
        scope=body.scope,
        source=body.source,
        by_label=f"API token '{caller.token.name}'",
        note=body.note,
        at=body.at,
        actor=caller.actor,
    )
    return _out(session, caller.workspace_id, contact_id)
