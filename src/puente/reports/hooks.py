"""The facts recorded by reacting to domain events inside their transaction (see
`puente.events.react`): contacts created, consent given or withdrawn. Facts with a
conversation's cycle are recorded where the change happens instead (reports.facts).

Imported by every process that changes contacts (next to `puente.automation.reactions`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import phonenumbers
from sqlalchemy.orm import Session

from puente.channels.costs import is_billable
from puente.contacts.models import Contact
from puente.conversations.models import Message, MessageSource, MessageStatus
from puente.db.base import utcnow
from puente.events import (
    BroadcastReplied,
    ConsentChanged,
    ContactCreated,
    ContactsImported,
    react,
)
from puente.outbound.models import Broadcast
from puente.reports.facts import Fact, Kind, record


def contact_created(session: Session, workspace_id: int, source: str, count: int = 1) -> None:
    """`count` contacts were created, first seen through `source` (ContactSource)."""
    fact = Fact(
        kind=Kind.CONTACT, workspace_id=workspace_id, at=utcnow(), source=source, count=count
    )
    record(session, fact)


def _on_contact_created(session: Session, event: ContactCreated) -> None:
    contact = session.get(Contact, event.contact_id)
    source = (contact.sources or ["whatsapp"])[0] if contact is not None else "whatsapp"
    contact_created(session, event.workspace_id, source)


def _on_contacts_imported(session: Session, event: ContactsImported) -> None:
    if event.created:
        contact_created(session, event.workspace_id, "import", event.created)


def _on_consent(session: Session, event: ConsentChanged) -> None:
    fact = Fact(
        kind=Kind.CONSENT,
        workspace_id=event.workspace_id,
        at=utcnow(),
        source=event.scope,
        label=event.state,  # opt_in | opt_out
    )
    record(session, fact)


react(ContactCreated, _on_contact_created)
react(ContactsImported, _on_contacts_imported)
react(ConsentChanged, _on_consent)


# -- statuses: what Meta bills, how far broadcasts got -------------------------------------

_FUNNEL = ("sent", "delivered", "read")


def country_of(wa_id: str | None) -> str:
    """The recipient's country (ISO code) from their number; "" when unknown."""
    if not wa_id or not wa_id.isdigit():
        return ""
    try:
        number = phonenumbers.parse("+" + wa_id)
    except phonenumbers.NumberParseException:
        return ""
    return phonenumbers.region_code_for_number(number) or ""


def status_applied(
    session: Session,
    message: Message,
    *,
    before_status: str,
    before_pricing: dict[str, Any] | None,
    recipient_id: str | None,
    at: dt.datetime,
) -> None:
    """A status webhook moved `message` on (statuses only move forward and pricing is taken
    once, so a late or repeated webhook reaches here with nothing new and counts nothing)."""
    base = Fact(
        kind=Kind.PRICING,
        workspace_id=message.workspace_id,
        at=at,
        channel_id=message.channel_id,
    )
    pricing = message.pricing
    if pricing and not before_pricing:
        billable = is_billable(message.source, pricing)
        kind = "billable" if billable else str(pricing.get("type") or "free_customer_service")
        category = str(pricing.get("category") or "service")
        record(session, replace(base, source=category, label=f"{kind}:{country_of(recipient_id)}"))
    if message.source != MessageSource.BROADCAST.value or message.status == before_status:
        return
    template = str((message.content or {}).get("name") or "")
    broadcast = replace(base, kind=Kind.BROADCAST, source=template)
    if message.status == MessageStatus.FAILED.value:
        code = (message.error or {}).get("code")
        record(session, replace(broadcast, label=f"failed:{code or ''}"))
        return
    reached = _FUNNEL.index(message.status) if message.status in _FUNNEL else -1
    passed = _FUNNEL.index(before_status) if before_status in _FUNNEL else -1
    # A "read" that came before its "delivered" still counts as delivered.
    for state in _FUNNEL[passed + 1 : reached + 1]:
        record(session, replace(broadcast, label=state))


def _on_broadcast_replied(session: Session, event: BroadcastReplied) -> None:
    broadcast = session.get(Broadcast, event.broadcast_id)
    if broadcast is None:
        return
    record(
        session,
        Fact(
            kind=Kind.BROADCAST,
            workspace_id=event.workspace_id,
            at=event.replied_at or utcnow(),
            channel_id=broadcast.channel_id,
            source=broadcast.template_name or "",
            label="replied",
        ),
    )


react(BroadcastReplied, _on_broadcast_replied)
