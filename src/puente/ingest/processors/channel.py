"""Finding the channel a change is for, cached for the session (one batch of work)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.channels.service import access_channel_by_phone_number_id
from puente.ingest.processors import ChangeRef, UnknownChannel

_CACHE_KEY = "puente_channels"


def channel_of(session: Session, change: ChangeRef) -> Channel:
    """The channel of a change that has `metadata.phone_number_id`."""
    pnid = change.phone_number_id
    if pnid is None:
        raise UnknownChannel(None, change.waba_id)
    # Holding the object (not just its id) keeps it in the session's identity map, which
    # only references objects weakly: every change of a batch then skips the query.
    cache: dict[str, Channel] = session.info.setdefault(_CACHE_KEY, {})
    channel = cache.get(pnid)
    if channel is None:
        channel = access_channel_by_phone_number_id(session, pnid)
        if channel is None:
            raise UnknownChannel(pnid, change.waba_id)
        cache[pnid] = channel
    return channel


def channels_of_waba(session: Session, waba_ids: list[str], phone: str | None) -> list[Channel]:
    """Channels of an account-level change: by WABA, narrowed to one number if given."""
    ids = [w for w in waba_ids if w]
    if not ids:
        return []
    query = select(Channel).where(Channel.waba_id.in_(ids)).order_by(Channel.id)
    if phone:
        digits = "".join(ch for ch in phone if ch.isdigit())
        query = query.where(Channel.display_phone_number == digits)
    return list(session.scalars(query))
