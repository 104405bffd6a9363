"""Operations on channels (phone numbers)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.channels.models import Channel


def access_channel_by_phone_number_id(session: Session, phone_number_id: str) -> Channel | None:
    return session.scalar(select(Channel).where(Channel.phone_number_id == phone_number_id))
