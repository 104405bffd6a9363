"""Processors turn one webhook change into domain rows. One module per webhook field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from puente.runtime import Runtime


class UnknownChannel(Exception):
    """The change is for a phone number (or WABA) Puente has no channel for yet."""

    def __init__(self, phone_number_id: str | None, waba_id: str | None) -> None:
        super().__init__(f"no channel for phone_number_id={phone_number_id} waba_id={waba_id}")
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id


@dataclass(frozen=True)
class ChangeRef:
    """One `entry[].changes[]` item with where it came from."""

    event_id: int
    waba_id: str | None  # entry[].id
    entry_time: int | None
    field: str
    value: dict[str, Any]

    @property
    def phone_number_id(self) -> str | None:
        metadata = self.value.get("metadata") or {}
        pnid = metadata.get("phone_number_id")
        return str(pnid) if pnid is not None else None


def apply_change(session: Session, runtime: Runtime, change: ChangeRef) -> None:
    """Apply one change idempotently. Raises UnknownChannel to park it; any other
    exception marks it failed (with the message kept) without touching other changes."""
    raise NotImplementedError  # filled in by the processors
