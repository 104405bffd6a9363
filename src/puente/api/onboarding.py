"""REST API for onboarding numbers (Embedded Signup or the sandbox's), sync requests and
a channel's coexistence status (health, history progress, sync requests, costs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from puente.api.common import ErrorOut, error_responses
from puente.api.deps import ApiCaller, RuntimeDep, SessionDep, scoped
from puente.channels import onboarding as ob
from puente.channels.costs import month_costs
from puente.channels.health import access_sync, channel_health
from puente.channels.models import Channel, Onboarding, OnboardingMethod, SyncRequest
from puente.channels.schemas import ChannelOut
from puente.channels.service import access_channel
from puente.db.base import utcnow
from puente.request_session import own_transactions

router = APIRouter(prefix="/channels", tags=["channels"])

ReadCaller = Annotated[ApiCaller, scoped("channels:read")]
WriteCaller = Annotated[ApiCaller, scoped("channels:write")]
ChannelId = Annotated[int, Path(ge=1, le=2**62)]


class OnboardingStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: OnboardingMethod = Field(
        description="coexistence (the number stays in the WhatsApp Business app) or "
        "new_number (a number in no WhatsApp app yet)"
    )
    phone: str = Field(max_length=32, pattern=r"^\+?[0-9 ()-]{8,30}$")
    import_history: bool = Field(
        default=True,
        description="import up to six months of chats; skipping it means importing later "
        "needs offboarding and onboarding again",
    )
    business_name: str | None = Field(default=None, max_length=200)


class OnboardingFinish(BaseModel):
    """What the Embedded Signup page received: the code (valid 30 s) and the session info."""

    model_config = ConfigDict(extra="forbid")

    method: OnboardingMethod
    code: str = Field(min_length=1, max_length=2048, repr=False)
    waba_id: str = Field(pattern=r"^[0-9]{1,64}$")
    phone_number_id: str | None = Field(default=None, pattern=r"^[0-9]{1,64}$")
    import_history: bool = True


class OnboardingOut(BaseModel):
    id: int
    method: str
    state: str
    import_history: bool
    phone: str | None
    confirm_code: str | None = Field(description="sandbox: type it on the simulated phone")
    waba_id: str | None
    phone_number_id: str | None
    channel_id: int | None
    error: dict[str, Any] | None
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, o: Onboarding) -> OnboardingOut:
        return cls(
            id=o.id,
            method=o.method,
            state=o.state,
            import_history=o.import_history,
            phone=o.phone,
            confirm_code=o.confirm_code,
            waba_id=o.waba_id,
            phone_number_id=o.phone_number_id,
            channel_id=o.channel_id,
            error=o.error,
            created_at=o.created_at,
            finished_at=o.finished_at,
        )


class SyncRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sync_type: str = Field(pattern=r"^(smb_app_state_sync|history)$")


class SyncRequestOut(BaseModel):
    id: int
    sync_type: str
    state: str
    request_id: str | None
    error: dict[str, Any] | None
    requested_at: dt.datetime

    @classmethod
    def of(cls, r: SyncRequest) -> SyncRequestOut:
        return cls(
            id=r.id,
            sync_type=r.sync_type,
            state=r.state,
            request_id=r.request_id,
            error=r.error,
            requested_at=r.requested_at,
        )


class CostsOut(BaseModel):
    month_start: dt.datetime
    free: int
    billable: int
    pending: int
    billable_by_category: dict[str, int]


class ChannelStatusOut(BaseModel):
    channel: ChannelOut
    state: str
    state_label: str
    state_detail: str | None
    sending_paused: bool
    inactive_days: int | None
    inactivity_warning: bool
    history_state: str | None
    history_skipped: bool
    progress: int = Field(description="history import, 0-100")
    phase_progress: dict[str, int]
    history_messages: int
    contacts_synced: int
    sync_requests: list[SyncRequestOut]
    retryable_syncs: list[str]
    sync_window_closes_at: dt.datetime | None
    costs: CostsOut


def channel_status(session: Session, channel: Channel) -> ChannelStatusOut:
    now = utcnow()
    health = channel_health(channel, access_sync(session, channel), now)
    costs = month_costs(session, channel, now)
    return ChannelStatusOut(
        channel=ChannelOut.of(channel),
        state=health.state,
        state_label=health.label,
        state_detail=health.detail,
        sending_paused=health.sending_paused,
        inactive_days=health.inactive_days,
        inactivity_warning=health.inactivity_warning,
        history_state=health.history_state,
        history_skipped=health.history_skipped,
        progress=health.progress,
        phase_progress=health.phase_progress,
        history_messages=health.history_messages,
        contacts_synced=health.contacts_synced,
        sync_requests=[SyncRequestOut.of(r) for r in ob.sync_requests(session, channel)],
        retryable_syncs=ob.retryable_syncs(session, channel, now),
        sync_window_closes_at=ob.sync_window_closes(channel),
        costs=CostsOut(
            month_start=costs.month_start,
            free=costs.free,
            billable=costs.billable,
            pending=costs.pending,
            billable_by_category=costs.billable_by_category,
        ),
    )


@router.get(
    "/onboardings",
    response_model=list[OnboardingOut],
    summary="Recent onboarding attempts, newest first",
    responses=error_responses(403),
)
def list_onboardings(caller: ReadCaller, session: SessionDep) -> list[OnboardingOut]:
    return [OnboardingOut.of(o) for o in ob.list_onboardings(session, caller.workspace_id)]


@router.post(
    "/onboardings",
    response_model=OnboardingOut,
    status_code=201,
    summary="Sandbox: start a signup; confirm its code on the simulated phone",
    responses=error_responses(400, 403, 409),
)
def start_onboarding(
    body: OnboardingStart, caller: WriteCaller, session: SessionDep, runtime: RuntimeDep
) -> OnboardingOut:
    row = ob.do_start_sandbox_signup(
        session,
        runtime.settings,
        workspace_id=caller.workspace_id,
        method=body.method,
        phone=body.phone,
        import_history=body.import_history,
        business_name=body.business_name,
        actor=caller.actor,
    )
    return OnboardingOut.of(row)


@router.get(
    "/onboardings/{onboarding_id}",
    response_model=OnboardingOut,
    summary="An onboarding attempt; in sandbox mode this also moves it on once confirmed",
    responses=error_responses(403, 404),
)
def get_onboarding(
    onboarding_id: ChannelId, caller: WriteCaller, runtime: RuntimeDep
) -> OnboardingOut:
    row = ob.watch_onboarding(runtime, caller.workspace_id, onboarding_id, caller.actor)
    return OnboardingOut.of(row)


@router.post(
    "/onboardings/finish",
    response_model=OnboardingOut,
    status_code=201,
    summary="Finish an Embedded Signup: exchange the code (valid 30 s) and connect the number",
    responses=error_responses(400, 403, 409),
)
@own_transactions
def finish_onboarding(
    body: OnboardingFinish, caller: WriteCaller, runtime: RuntimeDep
) -> OnboardingOut:
    signup = ob.SignupResult(
        method=body.method,
        code=body.code,
        waba_id=body.waba_id,
        phone_number_id=body.phone_number_id,
    )
    row = ob.finish_signup(
        runtime,
        workspace_id=caller.workspace_id,
        signup=signup,
        import_history=body.import_history,
        actor=caller.actor,
    )
    return OnboardingOut.of(row)


@router.get(
    "/{channel_id}/status",
    response_model=ChannelStatusOut,
    summary="Connection health, history progress, sync requests and this month's costs",
    responses=error_responses(403, 404),
)
def get_status(channel_id: ChannelId, caller: ReadCaller, session: SessionDep) -> ChannelStatusOut:
    return channel_status(session, access_channel(session, caller.workspace_id, channel_id))


@router.post(
    "/{channel_id}/sync-requests",
    response_model=SyncRequestOut,
    status_code=201,
    summary="Request (or retry) the contacts sync or the history import",
    responses={
        **error_responses(400, 403, 404, 409),
        502: {"model": ErrorOut, "description": "Meta refused the request; it is recorded"},
    },
)
@own_transactions
def request_sync(
    channel_id: ChannelId,
    body: SyncRequestIn,
    caller: WriteCaller,
    runtime: RuntimeDep,
) -> SyncRequestOut:
    return SyncRequestOut.of(
        ob.do_request_sync(runtime, caller.workspace_id, channel_id, body.sync_type, caller.actor)
    )
