"""REST API: webhook events that could not be processed, and retrying them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.ingest.failures import Failure, do_retry_change, do_retry_event, list_failures

router = APIRouter(prefix="/events", tags=["webhook events"])


class FailureOut(BaseModel):
    kind: Literal["event", "change"]
    id: int
    event_id: int
    state: str
    reason: str | None
    field: str | None
    phone_number_id: str | None
    waba_id: str | None
    attempts: int
    at: dt.datetime

    @classmethod
    def of(cls, failure: Failure) -> FailureOut:
        return cls(
            kind="event" if failure.kind == "event" else "change",
            id=failure.id,
            event_id=failure.event_id,
            state=failure.state,
            reason=failure.reason,
            field=failure.field,
            phone_number_id=failure.phone_number_id,
            waba_id=failure.waba_id,
            attempts=failure.attempts,
            at=failure.at,
        )


class FailureList(BaseModel):
    items: list[FailureOut]


Reader = Annotated[ApiCaller, scoped("events:read")]
Writer = Annotated[ApiCaller, scoped("events:write")]


@router.get(
    "/failed",
    response_model=FailureList,
    summary="Webhook events and changes that failed or wait for their channel",
    description=(
        "Events whose body could not be read, and single changes that failed or are parked "
        "because their phone number has no channel yet, for this workspace's numbers; newest "
        "first. Items no channel claims (unreadable events, unknown numbers) can name other "
        "tenants' numbers: they are listed only when the installation has this one workspace "
        "(otherwise the operator sees them with `puente events failed`)."
    ),
)
def get_failed(
    caller: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FailureList:
    failures = list_failures(session, caller.workspace_id, limit)
    return FailureList(items=[FailureOut.of(f) for f in failures])


@router.post(
    "/changes/{change_id}/retry",
    response_model=FailureOut,
    summary="Apply a failed or parked change again",
)
def retry_change(change_id: int, caller: Writer, session: SessionDep) -> FailureOut:
    return FailureOut.of(do_retry_change(session, caller.workspace_id, change_id, caller.actor))


@router.post(
    "/{event_id}/retry",
    response_model=FailureOut,
    summary="Process a failed event again from its stored body",
)
def retry_event(event_id: int, caller: Writer, session: SessionDep) -> FailureOut:
    return FailureOut.of(do_retry_event(session, caller.workspace_id, event_id, caller.actor))
