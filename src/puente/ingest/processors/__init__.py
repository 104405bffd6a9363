"""Processors turn one webhook change into domain rows. One module per webhook field."""

from __future__ import annotations

import importlib
from collections.abc import Callable
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


Processor = Callable[[Session, Runtime, ChangeRef], None]

# field -> "module:function" under puente.ingest.processors, imported on first use.
PROCESSORS = {
    "messages": "messages:process",
    "smb_message_echoes": "echoes:process",
    "history": "history:process",
    "smb_app_state_sync": "state_sync:process",
    "account_update": "account:process_account_update",
    "message_template_status_update": "templates:apply_template_status",
    "user_preferences": "preferences:process",
    "phone_number_quality_update": "number_health:process_quality_update",
    "phone_number_name_update": "number_health:process_name_update",
}
_loaded: dict[str, Processor] = {}


def _processor(field: str) -> Processor | None:
    if field not in _loaded:
        target = PROCESSORS.get(field)
        if target is None:
            return None
        module_name, function = target.split(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        _loaded[field] = getattr(module, function)
    return _loaded[field]


def apply_change(session: Session, runtime: Runtime, change: ChangeRef) -> None:
    """Apply one change idempotently. Raises UnknownChannel to park it; any other
    exception marks it failed (with the message kept) without touching other changes.

    Fields Puente does not process are left alone: the raw event stays stored.
    """
    processor = _processor(change.field)
    if processor is not None:
        processor(session, runtime, change)
