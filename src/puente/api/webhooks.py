"""REST API for outgoing webhooks: endpoints (list, create, get, change, delete, rotate the
secret, send a test event) and their delivery log (list, one with its attempts, resend
one or every failed one). Thin: the rules live in `puente.integrations.webhooks.service`.

Reads take a token with `settings:read` or `settings:write`; changes need `settings:write`.
The secret is in the answer of create and rotate-secret only."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, CallerDep, RuntimeDep, SessionDep, scoped
from puente.errors import Forbidden, NotFound
from puente.integrations.webhooks import service as hooks
from puente.integrations.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _reader(caller: CallerDep) -> ApiCaller:
    if not ({"settings:read", "settings:write", "*"} & set(caller.token.scopes)):
        raise Forbidden("this token lacks the 'settings:read' scope", code="missing_scope")
    return caller


def _session(session: SessionDep, runtime: RuntimeDep) -> Session:
    hooks.use_config(
        session,
        secrets=runtime.secrets,
        allow_private=runtime.settings.webhooks_allow_private,
    )
    return session


HooksSession = Annotated[Session, Depends(_session)]
ReadCaller = Annotated[ApiCaller, Depends(_reader)]
WriteCaller = Annotated[ApiCaller, scoped("settings:write")]
EndpointId = Annotated[int, Path(ge=1, le=2**62, description="the endpoint's id")]
DeliveryId = Annotated[int, Path(ge=1, le=2**62, description="the delivery's id")]
EventType = Literal[
    "message.created",
    "message.updated",
    "conversation.created",
    "conversation.updated",
    "conversation.assigned",
    "conversation.status_changed",
    "contact.created",
    "contact.updated",
    "contact.merged",
    "contact.erased",
    "broadcast.progress",
    "broadcast.finished",
    "workflow_run.finished",
    "channel.connection_changed",
]
StateName = Literal["pending", "delivered", "failed"]


# -- shapes ------------------------------------------------------------------------------------


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048,
        description="where deliveries are POSTed (http or https; private and loopback "
        "addresses are refused unless the operator allows them)",
        examples=["https://shop.example.com/puente/webhooks"],
    )
    events: list[EventType] = Field(min_length=1, description="the event types to send")
    channel_id: int | None = Field(
        default=None, ge=1, le=2**62, description="only the events of this number"
    )
    description: str = Field(default="", max_length=500)


class EndpointPatch(BaseModel):
    """Only the fields given change; `channel_id: null` removes the number filter."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    events: list[EventType] | None = Field(default=None, min_length=1)
    channel_id: int | None = Field(default=None, ge=1, le=2**62)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None, description="false stops sending; true again sends what waited"
    )


class EndpointOut(BaseModel):
    id: int
    url: str
    description: str
    events: list[str]
    channel_id: int | None
    enabled: bool
    disabled_reason: str | None = Field(description="why Puente switched it off, if it did")
    failing_since: dt.datetime | None = Field(
        description="the first failure since the last success; after 3 days it is disabled"
    )
    secret_hint: str = Field(description="the last 4 characters of the signing secret")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, e: WebhookEndpoint) -> EndpointOut:
        return cls(
            id=e.id,
            url=e.url,
            description=e.description,
            events=list(e.events or []),
            channel_id=e.channel_id,
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            failing_since=e.failing_since,
            secret_hint=e.secret_hint,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class EndpointWithSecret(EndpointOut):
    secret: str = Field(
        description="the signing secret (whsec_…), shown only now: verify deliveries with "
        "any Standard Webhooks library"
    )


class EndpointList(BaseModel):
    items: list[EndpointOut]


class SecretOut(BaseModel):
    secret: str = Field(description="the new signing secret, shown only now")


class AttemptOut(BaseModel):
    id: int
    at: dt.datetime
    status_code: int | None = Field(description="the receiver's answer; null when none came")
    duration_ms: int
    response_excerpt: str = Field(description="the first kilobyte of the answer")
    error: str | None = Field(description='what went wrong: "timeout", "redirect to …", …')

    @classmethod
    def of(cls, a: WebhookAttempt) -> AttemptOut:
        return cls(
            id=a.id,
            at=a.at,
            status_code=a.status_code,
            duration_ms=a.duration_ms,
            response_excerpt=a.response_excerpt,
            error=a.error,
        )


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: int
    event_id: str = Field(description="the webhook-id header, the same on every try")
    event_type: str
    conversation_id: int | None
    sequence: int | None = Field(description="its number among the conversation's deliveries")
    state: StateName
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            endpoint_id=d.endpoint_id,
            event_id=d.event_id,
            event_type=d.event_type,
            conversation_id=d.conversation_id,
            sequence=d.sequence,
            state=d.state,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
        )


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any] = Field(description="the JSON body sent")
    attempt_log: list[AttemptOut] = Field(description="each try, first first")


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_before_id: int | None = Field(description="pass as before_id for the next page")


class ResendCount(BaseModel):
    queued: int = Field(description="failed deliveries queued to be sent again")


# -- endpoints ---------------------------------------------------------------------------------


@router.get(
    "",
    response_model=EndpointList,
    summary="List the workspace's webhook endpoints",
    responses=error_responses(403),
)
def list_endpoints(_caller: ReadCaller, session: HooksSession) -> EndpointList:
    return EndpointList(items=[EndpointOut.of(e) for e in hooks.list_endpoints(session)])


@router.post(
    "",
    response_model=EndpointWithSecret,
    status_code=201,
    summary="Add an endpoint; the answer holds its signing secret, shown only this once",
    description="A URL Puente may not send to (not http or https, a private or loopback "
    "address), an unknown event type or number is refused with 422 and the reason.",
    responses=error_responses(403),
)
def create_endpoint(
    body: EndpointIn, caller: WriteCaller, session: HooksSession
) -> EndpointWithSecret:
    endpoint, secret = hooks.create_endpoint(
        session,
        url=body.url,
        events=list(body.events),
        channel_id=body.channel_id,
        description=body.description,
        actor=caller.actor,
    )
    return EndpointWithSecret(**EndpointOut.of(endpoint).model_dump(), secret=secret)


@router.get(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="One endpoint (without its secret)",
    responses=error_responses(403, 404),
)
def get_endpoint(
    endpoint_id: EndpointId, _caller: ReadCaller, session: HooksSession
) -> EndpointOut:
    return EndpointOut.of(hooks.get_endpoint(session, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="Change an endpoint, or switch it off and on",
    responses=error_responses(403, 404),
)
def update_endpoint(
    endpoint_id: EndpointId, body: EndpointPatch, caller: WriteCaller, session: HooksSession
) -> EndpointOut:
    current = hooks.get_endpoint(session, endpoint_id)
    given = body.model_fields_set
    endpoint = hooks.update_endpoint(
        session,
        endpoint_id,
        url=body.url if body.url is not None else current.url,
        events=list(body.events) if body.events is not None else list(current.events),
        channel_id=body.channel_id if "channel_id" in given else current.channel_id,
        description=body.description if body.description is not None else current.description,
        enabled=body.enabled if body.enabled is not None else current.enabled,
        actor=caller.actor,
    )
    return EndpointOut.of(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    summary="Delete an endpoint and its delivery log",
    responses=error_responses(403, 404),
)
def delete_endpoint(
    endpoint_id: EndpointId, caller: WriteCaller, session: HooksSession
) -> Response:
    hooks.delete_endpoint(session, endpoint_id, actor=caller.actor)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=SecretOut,
    summary="Replace the signing secret; the old one stops signing at once",
    responses=error_responses(403, 404),
)
def rotate_secret(endpoint_id: EndpointId, caller: WriteCaller, session: HooksSession) -> SecretOut:
    return SecretOut(secret=hooks.rotate_secret(session, endpoint_id, actor=caller.actor))


@router.post(
    "/{endpoint_id}/test",
    response_model=DeliveryOut,
    status_code=202,
    summary='Queue a "webhook.test" event to the endpoint, whatever events it takes',
    responses=error_responses(403, 404),
)
def send_test(endpoint_id: EndpointId, caller: WriteCaller, session: HooksSession) -> DeliveryOut:
    return DeliveryOut.of(hooks.send_test(session, endpoint_id, actor=caller.actor))


# -- the delivery log --------------------------------------------------------------------------


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    summary="The endpoint's deliveries, newest first",
    responses=error_responses(403, 404),
)
def list_deliveries(
    endpoint_id: EndpointId,
    _caller: ReadCaller,
    session: HooksSession,
    state: Annotated[StateName | None, Query(description="only those in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=2**62, description="page on")] = None,
) -> DeliveryList:
    hooks.get_endpoint(session, endpoint_id)
    found = hooks.list_deliveries(
        session, endpoint_id, state=state, limit=limit, before_id=before_id
    )
    return DeliveryList(
        items=[DeliveryOut.of(d) for d in found],
        next_before_id=found[-1].id if len(found) == limit else None,
    )


def _delivery(session: Session, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    delivery = hooks.get_delivery(session, delivery_id)
    if delivery.endpoint_id != endpoint_id:
        raise NotFound("No such delivery.", code="not_found")
    return delivery


@router.get(
    "/{endpoint_id}/deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    summary="One delivery, its body and every attempt",
    responses=error_responses(403, 404),
)
def get_delivery(
    endpoint_id: EndpointId, delivery_id: DeliveryId, _caller: ReadCaller, session: HooksSession
) -> DeliveryDetail:
    delivery = _delivery(session, endpoint_id, delivery_id)
    attempts = [AttemptOut.of(a) for a in hooks.attempts_of(session, delivery.id)]
    return DeliveryDetail(
        **DeliveryOut.of(delivery).model_dump(), payload=delivery.payload, attempt_log=attempts
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/resend",
    response_model=DeliveryOut,
    status_code=202,
    summary="Send a delivery again (the same webhook-id)",
    responses=error_responses(403, 404),
)
def resend(
    endpoint_id: EndpointId, delivery_id: DeliveryId, caller: WriteCaller, session: HooksSession
) -> DeliveryOut:
    _delivery(session, endpoint_id, delivery_id)
    return DeliveryOut.of(hooks.resend(session, delivery_id, actor=caller.actor))


@router.post(
    "/{endpoint_id}/resend-failed",
    response_model=ResendCount,
    status_code=202,
    summary="Send every failed delivery of the endpoint again",
    responses=error_responses(403, 404),
)
def resend_failed(
    endpoint_id: EndpointId, caller: WriteCaller, session: HooksSession
) -> ResendCount:
    return ResendCount(queued=hooks.resend_failed(session, endpoint_id, actor=caller.actor))
