"""Operations on channels (phone numbers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import DEFAULT_THROUGHPUT, Channel, ChannelMode, ConnectionState
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.scope import unscoped
from puente.errors import Conflict, InvalidInput, NotFound
from puente.secrets import SecretBox
from puente.whatsapp.client import is_access_token

_META_ID = re.compile(r"^[0-9]{1,64}$")


def access_channel_by_phone_number_id(session: Session, phone_number_id: str) -> Channel | None:
    """The channel of a number, whichever workspace holds it: a number is connected to one
    workspace in all of Puente (webhooks are routed by it, a second connection refused)."""
    with unscoped(session, "a number belongs to one workspace in all of Puente"):
        return session.scalar(select(Channel).where(Channel.phone_number_id == phone_number_id))


def access_channel(session: Session, workspace_id: int, channel_id: int) -> Channel:
    channel = session.scalar(
        select(Channel).where(Channel.id == channel_id, Channel.workspace_id == workspace_id)
    )
    if channel is None:
        raise NotFound(f"no channel {channel_id} in this workspace")
    return channel


def list_channels(session: Session, workspace_id: int) -> list[Channel]:
    return list(
        session.scalars(
            select(Channel).where(Channel.workspace_id == workspace_id).order_by(Channel.id)
        )
    )


@dataclass(frozen=True)
class NewChannel:
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str
    name: str | None = None
    mode: ChannelMode = ChannelMode.CLOUD_API


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def check_create_channel(
    session: Session, settings: Settings, workspace_id: int, new: NewChannel
) -> NewChannel:
    """The channel as it will be stored (display number reduced to digits), or an error."""
    for field in ("phone_number_id", "waba_id"):
        if not _META_ID.match(getattr(new, field).strip()):
            raise _field_error(field, "must be Meta's numeric id")
    digits = re.sub(r"\D", "", new.display_phone_number)
    if not 6 <= len(digits) <= 20:
        raise _field_error("display_phone_number", "must hold the full number with country code")
    if not new.access_token.strip():
        raise _field_error("access_token", "must not be empty")
    if not is_access_token(new.access_token.strip()):
        raise _field_error(
            "access_token",
            "is not a Meta access token (letters and digits only, no spaces, copied whole)",
        )
    count = session.scalar(
        select(func.count()).select_from(Channel).where(Channel.workspace_id == workspace_id)
    )
    if (count or 0) >= settings.max_channels_per_workspace:
        raise Conflict(
            f"this workspace has reached its limit of {settings.max_channels_per_workspace} "
            "channels (PUENTE_MAX_CHANNELS_PER_WORKSPACE)",
            code="channel_limit",
        )
    existing = access_channel_by_phone_number_id(session, new.phone_number_id.strip())
    if existing is not None:
        # Ids are global at Meta, so a number lives in one workspace only; say no more
        # than that when it belongs to someone else.
        details = {"existing_id": existing.id} if existing.workspace_id == workspace_id else None
        raise Conflict(
            f"phone number id {new.phone_number_id} is already connected",
            code="duplicate",
            details=details,
        )
    return NewChannel(
        phone_number_id=new.phone_number_id.strip(),
        waba_id=new.waba_id.strip(),
        display_phone_number=digits,
        access_token=new.access_token.strip(),
        name=(new.name or "").strip() or f"+{digits}",
        mode=ChannelMode(new.mode),
    )


def do_create_channel(
    session: Session,
    settings: Settings,
    secrets: SecretBox,
    *,
    workspace_id: int,
    new: NewChannel,
    actor: Any = None,
) -> Channel:
    """Connect a number whose ids and token the owner copied from Meta's dashboard (or
    that an onboarding found). Audited when a person or token connects it (`actor`)."""
    from puente.ingest.process import release_parked

    new = check_create_channel(session, settings, workspace_id, new)
    now = utcnow()
    channel = Channel(
        workspace_id=workspace_id,
        name=new.name,
        phone_number_id=new.phone_number_id,
        waba_id=new.waba_id,
        display_phone_number=new.display_phone_number,
        mode=new.mode.value,
        access_token_encrypted=secrets.encrypt(new.access_token),
        throughput_mps=DEFAULT_THROUGHPUT[new.mode],
        connection_state=ConnectionState.CONNECTED.value,
        state_changed_at=now,
        onboarded_at=now,
        settings={},
    )
    session.add(channel)
    session.flush()
    # Webhooks for this number (and account events for its WABA) may have arrived before
    # it was connected; they were kept.
    release_parked(session, channel.phone_number_id, channel.waba_id)
    if actor is not None:
        audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=Action.CHANNEL_CONNECTED,
            target=f"channel {channel.id}",
            details={"phone_number_id": channel.phone_number_id, "mode": channel.mode},
        )
    return channel


def do_change_channel_settings(
    session: Session, channel: Channel, changes: dict[str, Any], actor: Any
) -> None:
    """Merge `changes` into the number's settings (e.g. pause_bot_on_owner_reply)."""
    channel.settings = {**(channel.settings or {}), **changes}
    audit.record(
        session,
        workspace_id=channel.workspace_id,
        actor=actor,
        action=Action.CHANNEL_SETTINGS_CHANGED,
        target=f"channel {channel.id}",
        details=changes,
    )
