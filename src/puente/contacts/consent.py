"""Marketing consent: opt-in and opt-out records per contact, Meta's signals of a stop, and
the check that keeps marketing templates away from contacts who said stop (opt-out
keywords live in puente.contacts.optout_keywords)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.models import Workspace
from puente.contacts.models import ConsentEvent, ConsentKind, Contact, ContactConsent
from puente.contacts.service import access_contact
from puente.db.base import utcnow
from puente.errors import InvalidInput, NotFound, PuenteError
from puente.events import ConsentChanged, publish

MARKETING = "marketing"
SCOPES = (MARKETING,)


class ConsentSource(enum.StrEnum):
    KEYWORD = "keyword"  # the customer wrote an opt-out keyword
    META_131050 = "meta_131050"  # Meta refused a send: the user stopped marketing messages
    # The user stopped (or resumed) marketing messages in WhatsApp itself: user_preferences.
    META_PREFERENCES = "meta_user_preferences"
    API = "api"
    AGENT = "agent"  # recorded by a person in the web inbox
    WEB_FORM = "web_form"
    IMPORT = "import"
    CLI = "cli"


class OptedOut(PuenteError):
    """A marketing message was refused because the contact opted out (or never opted in)."""

    status_code = 409
    code = "contact_opted_out"


@dataclass(frozen=True)
class ConsentView:
    contact_id: int
    scope: str
    state: str | None  # opt_in, opt_out, or None when nothing was ever recorded
    since: dt.datetime | None
    source: str | None
    events: list[ConsentEvent]


def access_consent(
    session: Session, workspace_id: int, contact_id: int, scope: str = MARKETING
) -> ConsentView:
    """The contact's current consent and its full history, newest first."""
    access_contact(session, workspace_id, contact_id)
    current = session.scalar(
        select(ContactConsent).where(
            ContactConsent.workspace_id == workspace_id,
            ContactConsent.contact_id == contact_id,
            ContactConsent.scope == scope,
        )
    )
    events = session.scalars(
        select(ConsentEvent)
        .where(
            ConsentEvent.workspace_id == workspace_id,
            ConsentEvent.contact_id == contact_id,
            ConsentEvent.scope == scope,
        )
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
    ).all()
    return ConsentView(
        contact_id=contact_id,
        scope=scope,
        state=current.state if current else None,
        since=current.since if current else None,
        source=current.source if current else None,
        events=list(events),
    )


def check_consent_input(kind: str, scope: str, source: str) -> None:
    problems = []
    if kind not in (ConsentKind.OPT_IN, ConsentKind.OPT_OUT):
        problems.append({"field": "kind", "message": "must be opt_in or opt_out"})
    if scope not in SCOPES:
        problems.append({"field": "scope", "message": f"must be one of {', '.join(SCOPES)}"})
    if not source or len(source) > 32:
        problems.append({"field": "source", "message": "give a source of 1 to 32 characters"})
    if problems:
        raise InvalidInput("the consent record is not valid", details=problems)


def do_record_consent(
    session: Session,
    *,
    contact: Contact,
    kind: str,
    source: str,
    scope: str = MARKETING,
    by_user_id: int | None = None,
    by_label: str | None = None,
    note: str | None = None,
    message_id: int | None = None,
    at: dt.datetime | None = None,
    actor: Any = None,
) -> ConsentEvent:
    """Append a consent event and make it the contact's current state for `scope`.

    An event older than the current state (a late webhook) is kept in the history but
    does not overturn what the contact said more recently.
    """
    check_consent_input(kind, scope, source)
    at = at or utcnow()
    event = ConsentEvent(
        workspace_id=contact.workspace_id,
        contact_id=contact.id,
        kind=kind,
        scope=scope,
        source=source,
        by_user_id=by_user_id,
        by_label=by_label,
        note=(note or None) and note[:500],
        message_id=message_id,
        at=at,
    )
    session.add(event)
    session.flush()
    current = session.scalar(
        select(ContactConsent)
        .where(ContactConsent.contact_id == contact.id, ContactConsent.scope == scope)
        .with_for_update()
    )
    if current is None:
        current = ContactConsent(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            scope=scope,
            state=kind,
            since=at,
            source=source,
            event_id=event.id,
        )
        session.add(current)
    elif at >= current.since:
        current.state, current.since, current.source, current.event_id = kind, at, source, event.id
    session.flush()
    publish(
        session,
        ConsentChanged(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            scope=scope,
            state=current.state,
        ),
    )
    if actor is not None:  # a person or token; keywords and Meta's signals are not
        audit.record(
            session,
            workspace_id=contact.workspace_id,
            actor=actor,
            action=Action.CONSENT_RECORDED,
            target=f"contact {contact.id}",
            details={"kind": kind, "scope": scope, "source": source, "event_id": event.id},
        )
    return event


def consent_state(session: Session, contact_id: int, scope: str = MARKETING) -> str | None:
    return session.scalar(
        select(ContactConsent.state).where(
            ContactConsent.contact_id == contact_id, ContactConsent.scope == scope
        )
    )


def check_marketing_consent(session: Session, contact_id: int) -> None:
    """Raise OptedOut unless `contact_id` may receive marketing templates.

    An opt-out always blocks. Without any record the contact is allowed, unless the
    workspace setting `marketing_requires_opt_in` asks for an explicit opt-in first.
    """
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    state = consent_state(session, contact_id)
    name = contact.display_name or contact.phone_e164 or f"contact {contact_id}"
    if state == ConsentKind.OPT_OUT:
        raise OptedOut(
            f"{name} opted out of marketing messages; marketing templates cannot be sent"
            " to them (utility and authentication templates still can)",
            details={"contact_id": contact_id, "consent": state},
        )
    if state is None:
        workspace = session.get(Workspace, contact.workspace_id)
        if workspace is not None and (workspace.settings or {}).get("marketing_requires_opt_in"):
            raise OptedOut(
                f"{name} has not opted in to marketing messages, and this workspace"
                " requires an opt-in first",
                details={"contact_id": contact_id, "consent": None},
                code="contact_not_opted_in",
            )


def record_optout_from_meta(session: Session, message: Any) -> ConsentEvent | None:
    """Record an opt-out when Meta refused `message` with 131050 (the user stopped
    marketing messages). Safe to call twice for the same failure."""
    codes = {e.get("code") for e in _errors_of(message)}
    if 131050 not in codes and "131050" not in codes:
        return None
    if optout_recorded_for(session, message.id):
        return None
    contact = session.get(Contact, message.contact_id)
    if contact is None:
        return None
    return do_record_consent(
        session,
        contact=contact,
        kind=ConsentKind.OPT_OUT,
        source=ConsentSource.META_131050,
        by_label="Meta",
        note="Meta: the user stopped marketing messages (131050)",
        message_id=message.id,
        at=message.status_at or utcnow(),
    )


# user_preferences values: "stop" opts out; "resume" (and "signup", joining through a
# signup link) opt back in.
_PREFERENCE_KINDS = {
    "stop": ConsentKind.OPT_OUT,
    "resume": ConsentKind.OPT_IN,
    "signup": ConsentKind.OPT_IN,
}
_PREFERENCE_NOTES = {
    "stop": "WhatsApp: the customer stopped marketing messages from this business",
    "resume": "WhatsApp: the customer resumed marketing messages from this business",
    "signup": "WhatsApp: the customer signed up for marketing messages",
}


def record_preference_from_meta(
    session: Session, contact: Contact, value: str, at: dt.datetime
) -> ConsentEvent | None:
    """Record a marketing preference the customer set in WhatsApp (the `user_preferences`
    webhook), as error 131050 does for a stop. The latest timestamp wins: an older
    "resume" arriving after a newer "stop" is kept in the history and changes nothing.
    The same webhook delivered twice is recorded once."""
    kind = _PREFERENCE_KINDS.get(value.strip().lower())
    if kind is None:
        return None
    duplicate = session.scalar(
        select(ConsentEvent.id).where(
            ConsentEvent.contact_id == contact.id,
            ConsentEvent.scope == MARKETING,
            ConsentEvent.source == ConsentSource.META_PREFERENCES,
            ConsentEvent.kind == kind,
            ConsentEvent.at == at,
        )
    )
    if duplicate is not None:
        return None
    return do_record_consent(
        session,
        contact=contact,
        kind=kind,
        source=ConsentSource.META_PREFERENCES,
        by_label="Meta",
        note=_PREFERENCE_NOTES[value.strip().lower()],
        at=at,
    )


def _errors_of(message: Any) -> list[dict[str, Any]]:
    error = message.error
    if isinstance(error, dict):
        nested = error.get("errors")
        return [e for e in nested if isinstance(e, dict)] if isinstance(nested, list) else [error]
    if isinstance(error, list):
        return [e for e in error if isinstance(e, dict)]
    return []


def optout_recorded_for(session: Session, message_id: int | None) -> bool:
    if message_id is None:
        return False
    return (
        session.scalar(
            select(ConsentEvent.id).where(
                ConsentEvent.message_id == message_id, ConsentEvent.kind == ConsentKind.OPT_OUT
            )
        )
        is not None
    )
