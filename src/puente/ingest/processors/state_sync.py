"""field `smb_app_state_sync`: contacts added, edited and removed in the owner's app."""

from __future__ import annotations

from sqlalchemy.orm import Session

from puente.channels.sync import AppContactChange, do_apply_contact_sync
from puente.contacts.resolve import digits_of
from puente.db.base import utcnow
from puente.ingest.processors import ChangeRef
from puente.ingest.processors.channel import channel_of
from puente.ingest.processors.convert import from_unix
from puente.runtime import Runtime
from puente.whatsapp.webhooks import StateSyncValue


def process(session: Session, _runtime: Runtime, change: ChangeRef) -> None:
    value = StateSyncValue.model_validate(change.value)
    changes = []
    for item in value.state_sync:
        if item.type != "contact" or item.contact is None or item.action not in ("add", "remove"):
            continue
        stamp = item.metadata.timestamp if item.metadata else None
        timestamp = (
            from_unix(stamp)
            if stamp is not None
            else (from_unix(change.entry_time) if change.entry_time else utcnow())
        )
        changes.append(
            AppContactChange(
                phone=digits_of(item.contact.phone_number),
                action=item.action,
                timestamp=timestamp,
                full_name=item.contact.full_name,
                first_name=item.contact.first_name,
            )
        )
    if changes:
        do_apply_contact_sync(session, channel_of(session, change), changes)
