"""Outgoing webhooks' operations: endpoints (create, change, rotate the secret, delete),
their delivery log, resends and test events. (Deliveries of domain events are written by
`deliveries.enqueue`, which the reactions call inside the transaction of the change.)

Every function takes a session scoped to one workspace. Refusals are `InvalidInput` whose
message is an i18n msgid with `params`, so the web shows them translated."""

from __future__ import annotations

import base64
import datetime as dt
import secrets as pysecrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.models import User
from puente.channels.models import Channel
from puente.db.base import utcnow
from puente.db.scope import WorkspaceScope, scope_of
from puente.db.session import Database
from puente.errors import InvalidInput, NotFound
from puente.integrations.webhooks.deliveries import (
    RETRY_FOR,
    forget_endpoints,
    new_delivery,
    new_event_id,
    payload_of,
)
from puente.integrations.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSequence,
)
from puente.integrations.webhooks.urls import check_url
from puente.jobs import WEBHOOKS
from puente.secrets import SecretBox

# The public event types, in the order the pages list them.
EVENT_TYPES: tuple[str, ...] = (
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
)
TEST_EVENT = "webhook.test"

MAX_DESCRIPTION = 500
SECRET_PREFIX = "whsec_"  # noqa: S105  (the Standard Webhooks prefix, not a secret)


# -- configuration ------------------------------------------------------------------------

_CONFIG_KEY = "puente.webhooks.config"


@dataclass(frozen=True)
class WebhookConfig:
    """What the operations need of the runtime: the box that encrypts secrets, and whether
    private addresses are allowed (PUENTE_WEBHOOKS_ALLOW_PRIVATE)."""

    secrets: SecretBox
    allow_private: bool


def configure(db: Database, *, secrets: SecretBox, allow_private: bool) -> None:
    """Give every session of `db` the webhooks' configuration (see `config_of`). Called by
    the worker's install (every web and worker process) and by the CLI."""
    config = WebhookConfig(secrets=secrets, allow_private=allow_private)
    for factory in (db.session_factory, db.read_factory):
        # sessionmaker copies this dict into each new session's info.
        factory.kw.setdefault("info", {})[_CONFIG_KEY] = config


def use_config(session: Session, *, secrets: SecretBox, allow_private: bool) -> None:
    """Give this one session the webhooks' configuration (a caller holding the runtime,
    such as an API route, whatever `configure` was or was not told)."""
    session.info[_CONFIG_KEY] = WebhookConfig(secrets=secrets, allow_private=allow_private)


def config_of(session: Session) -> WebhookConfig:
    config = session.info.get(_CONFIG_KEY)
    if not isinstance(config, WebhookConfig):
        raise RuntimeError("outgoing webhooks are not configured on this database (configure)")
    return config


def _workspace_id(session: Session) -> int:
    scope = scope_of(session)
    if not isinstance(scope, WorkspaceScope):
        raise RuntimeError("webhook endpoints are managed in a session scoped to a workspace")
    return scope.workspace_id


def _check_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            "Unknown event type: %(name)s.", params={"name": ", ".join(unknown)}, code="invalid"
        )
    if not events:
        raise InvalidInput("Choose at least one event to send.", code="invalid")
    return [e for e in EVENT_TYPES if e in set(events)]


def _check_channel(session: Session, channel_id: int | None) -> int | None:
    if channel_id is None:
        return None
    if session.scalar(select(Channel.id).where(Channel.id == channel_id)) is None:
        raise InvalidInput(
            "Unknown number (id %(id)s).", params={"id": channel_id}, code="unknown_channel"
        )
    return channel_id


def _check_description(description: str) -> str:
    description = description.strip()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            "The description is too long (at most %(max)s characters).",
            params={"max": MAX_DESCRIPTION},
        )
    return description


# -- secrets -----------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(pysecrets.token_bytes(24)).decode()


def _set_secret(session: Session, endpoint: WebhookEndpoint) -> str:
    secret = new_secret()
    endpoint.secret = config_of(session).secrets.encrypt(secret)
    endpoint.secret_hint = secret[-4:]
    return secret


# -- audit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UserActor:
    user_id: int
    label: str


def _actor(session: Session, actor: Any, actor_user_id: int | None) -> Any:
    if actor is not None or actor_user_id is None:
        return actor
    user = session.get(User, actor_user_id)
    return _UserActor(actor_user_id, user.email if user is not None else f"user {actor_user_id}")


def _audit(session: Session, actor: Any, action: str, endpoint_id: int, **details: Any) -> None:
    # Recorded for people and tokens; automated callers pass no actor and write none.
    if actor is None:
        return
    audit.record(
        session,
        workspace_id=_workspace_id(session),
        actor=actor,
        action=action,
        target=f"webhook_endpoint:{endpoint_id}",
        details=details or None,
    )


# -- endpoints -----------------------------------------------------------------------------


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """The workspace's endpoints, oldest first."""
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="not_found")
    return endpoint


def create_endpoint(
    session: Session,
    *,
    url: str,
    events: Sequence[str],
    channel_id: int | None = None,
    description: str = "",
    actor_user_id: int | None = None,
    actor: Any = None,
) -> tuple[WebhookEndpoint, str]:
    """A new, enabled endpoint and its secret ("whsec_…"), shown this once."""
    config = config_of(session)
    endpoint = WebhookEndpoint(
        workspace_id=_workspace_id(session),
        url=check_url(url, allow_private=config.allow_private),
        events=_check_events(events),
        channel_id=_check_channel(session, channel_id),
        description=_check_description(description),
        enabled=True,
    )
    secret = _set_secret(session, endpoint)
    session.add(endpoint)
    session.flush()
    forget_endpoints(session)
    _audit(
        session,
        _actor(session, actor, actor_user_id),
        Action.WEBHOOK_ENDPOINT_CREATED,
        endpoint.id,
        events=endpoint.events,
    )
    return endpoint, secret


def update_endpoint(
    session: Session,
    endpoint_id: int,
    *,
    url: str,
    events: Sequence[str],
    channel_id: int | None,
    description: str,
    enabled: bool,
    actor: Any = None,
) -> WebhookEndpoint:
    """Change everything about an endpoint but its secret. Switching it back on clears why
    it was switched off and its failure streak; its pending deliveries go out again."""
    endpoint = get_endpoint(session, endpoint_id)
    config = config_of(session)
    new_url = url.strip()
    if new_url != endpoint.url:
        new_url = check_url(new_url, allow_private=config.allow_private)
    endpoint.url = new_url
    endpoint.events = _check_events(events)
    endpoint.channel_id = _check_channel(session, channel_id)
    endpoint.description = _check_description(description)
    if enabled and not endpoint.enabled:
        endpoint.disabled_reason = None
        endpoint.failing_since = None
        WEBHOOKS.wake_after_commit(session)
    elif not enabled and endpoint.enabled:
        endpoint.disabled_reason = None
    endpoint.enabled = enabled
    session.flush()
    forget_endpoints(session)
    _audit(
        session,
        actor,
        Action.WEBHOOK_ENDPOINT_UPDATED,
        endpoint.id,
        enabled=enabled,
        events=endpoint.events,
    )
    return endpoint


def rotate_secret(session: Session, endpoint_id: int, *, actor: Any = None) -> str:
    """A new secret for the endpoint, shown this once; the old one stops signing now."""
    endpoint = get_endpoint(session, endpoint_id)
    secret = _set_secret(session, endpoint)
    endpoint.updated_at = utcnow()
    session.flush()
    _audit(session, actor, Action.WEBHOOK_SECRET_ROTATED, endpoint.id)
    return secret


def delete_endpoint(session: Session, endpoint_id: int, *, actor: Any = None) -> None:
    """The endpoint and its whole delivery log."""
    endpoint = get_endpoint(session, endpoint_id)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.execute(delete(WebhookSequence).where(WebhookSequence.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()
    forget_endpoints(session)
    _audit(session, actor, Action.WEBHOOK_ENDPOINT_DELETED, endpoint_id)


# -- the delivery log ----------------------------------------------------------------------


def list_deliveries(
    session: Session,
    endpoint_id: int,
    *,
    state: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first; `before_id` pages on."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == state)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    stmt = stmt.order_by(WebhookDelivery.id.desc()).limit(max(1, min(limit, 500)))
    return list(session.scalars(stmt))


def get_delivery(session: Session, delivery_id: int) -> WebhookDelivery:
    delivery = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
    if delivery is None:
        raise NotFound("No such delivery.", code="not_found")
    return delivery


def attempts_of(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    """The delivery's tries, first first."""
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        )
    )


def _requeue(delivery: WebhookDelivery, now: dt.datetime) -> None:
    delivery.state = DeliveryState.PENDING.value
    delivery.next_attempt_at = now
    delivery.give_up_at = now + RETRY_FOR
    delivery.delivered_at = None


def resend(session: Session, delivery_id: int, *, actor: Any = None) -> WebhookDelivery:
    """Send the delivery again (same webhook-id, so a receiver can tell it is a repeat),
    retried for three more days if it fails. A delivery still pending is left as it is."""
    delivery = get_delivery(session, delivery_id)
    if delivery.state != DeliveryState.PENDING.value:
        _requeue(delivery, utcnow())
        session.flush()
        WEBHOOKS.wake_after_commit(session)
    _audit(
        session, actor, Action.WEBHOOK_DELIVERY_RESENT, delivery.endpoint_id, delivery=delivery.id
    )
    return delivery


def resend_failed(session: Session, endpoint_id: int, *, actor: Any = None) -> int:
    """Send every failed delivery of the endpoint again; returns how many."""
    endpoint = get_endpoint(session, endpoint_id)
    now = utcnow()
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.state == DeliveryState.FAILED.value,
        )
        .values(
            state=DeliveryState.PENDING.value,
            next_attempt_at=now,
            give_up_at=now + RETRY_FOR,
        )
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        WEBHOOKS.wake_after_commit(session)
    _audit(session, actor, Action.WEBHOOK_DELIVERY_RESENT, endpoint.id, count=count)
    return count


def send_test(session: Session, endpoint_id: int, *, actor: Any = None) -> WebhookDelivery:
    """Queue a "webhook.test" event to the endpoint, whatever events it subscribes to."""
    endpoint = get_endpoint(session, endpoint_id)
    now = utcnow()
    data = {"endpoint_id": endpoint.id, "message": "A test event from Puente."}
    delivery = new_delivery(
        session,
        endpoint_id=endpoint.id,
        workspace_id=endpoint.workspace_id,
        event_type=TEST_EVENT,
        event_id=new_event_id(),
        payload=payload_of(TEST_EVENT, endpoint.workspace_id, data, now, None),
        conversation_id=None,
        sequence=None,
        now=now,
    )
    session.add(delivery)
    session.flush()
    WEBHOOKS.wake_after_commit(session)
    _audit(session, actor, Action.WEBHOOK_TEST_SENT, endpoint.id, delivery=delivery.id)
    return delivery
