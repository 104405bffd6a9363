"""Marketing consent: opt-in and opt-out records per contact, opt-out keywords, and the
check that keeps marketing templates away from contacts who said stop."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import unicodedata
from collections.abc import Iterable
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
from puente.events import DomainEvent, publish

log = logging.getLogger(__name__)

MARKETING = "marketing"
SCOPES = (MARKETING,)

# Whole-message keywords that opt a contact out of marketing (workspace setting
# `optout_keywords` replaces this list). Matching ignores case and accents.
DEFAULT_OPTOUT_KEYWORDS = ("STOP", "BAJA", "CANCELAR", "UNSUBSCRIBE", "ALTO")
# Longer messages are never keywords; this keeps the inbound hot path free of queries.
MAX_KEYWORD_LENGTH = 64
# The language each default keyword is written in, for the confirmation reply.
KEYWORD_LANGUAGE = {
    "stop": "en",
    "unsubscribe": "en",
    "baja": "es",
    "cancelar": "es",
    "alto": "es",
}
DEFAULT_CONFIRMATIONS = {
    "es": "Listo: ya no te enviaremos mensajes promocionales. Si cambias de opinión, "
    "escríbenos en cualquier momento.",
    "en": "Done: you will no longer receive promotional messages from us. If you change "
    "your mind, just write to us.",
}
# Country calling codes of Spanish-speaking countries, to pick the confirmation's language
# when neither the contact nor the keyword says.
SPANISH_CALLING_CODES = (
    "34", "52", "53", "54", "56", "57", "58", "51", "591", "593", "595", "598", "502", "503",
    "504", "505", "506", "507", "1809", "1829", "1849", "240",
)  # fmt: skip


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


def normalize_keyword(text: str) -> str:
    """Case- and accent-insensitive form of a whole message: " Báj́a! " -> "baja"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold().strip().strip(".!¡?¿ \t\r\n")


def optout_keywords(workspace: Workspace) -> list[str]:
    configured = (workspace.settings or {}).get("optout_keywords")
    if isinstance(configured, list) and configured:
        return [str(k) for k in configured if str(k).strip()]
    return list(DEFAULT_OPTOUT_KEYWORDS)


def match_optout_keyword(text: str | None, keywords: Iterable[str]) -> str | None:
    """The keyword `text` consists of (normalised), or None."""
    if not text:
        return None
    said = normalize_keyword(text)
    return said if said in _normalized(tuple(keywords)) else None


@functools.lru_cache(maxsize=256)
def _normalized(keywords: tuple[str, ...]) -> frozenset[str]:
    # Workspaces share a handful of keyword lists; normalise each list once per process.
    return frozenset(normalize_keyword(k) for k in keywords)


_KEYWORDS_CACHE = "puente.optout_keywords"


def _workspace_keywords(session: Session, workspace_id: int) -> tuple[str, ...] | None:
    """The workspace's keywords, read once per session: the ingest worker's batch is one
    session, so its changes share one lookup instead of a Workspace SELECT each."""
    cache: dict[int, tuple[str, ...] | None] = session.info.setdefault(_KEYWORDS_CACHE, {})
    if workspace_id not in cache:
        workspace = session.get(Workspace, workspace_id)
        cache[workspace_id] = None if workspace is None else tuple(optout_keywords(workspace))
    return cache[workspace_id]


def contact_language(contact: Contact, keyword: str | None = None) -> str:
    """es or en: the contact's own setting, else the keyword's language, else the country."""
    for key in ("language", "lang", "locale"):
        value = str((contact.custom_fields or {}).get(key) or "").lower()
        if value[:2] in ("es", "en"):
            return value[:2]
    if keyword and keyword in KEYWORD_LANGUAGE:
        return KEYWORD_LANGUAGE[keyword]
    digits = (contact.phone_e164 or contact.wa_id or "").lstrip("+")
    if any(digits.startswith(code) for code in SPANISH_CALLING_CODES):
        return "es"
    return "en"


def optout_confirmation(workspace: Workspace, language: str) -> str:
    configured = (workspace.settings or {}).get("optout_confirmation")
    if isinstance(configured, dict) and configured.get(language):
        return str(configured[language])
    return DEFAULT_CONFIRMATIONS.get(language, DEFAULT_CONFIRMATIONS["en"])


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
        DomainEvent(
            workspace_id=contact.workspace_id,
            kind="contact.consent",
            data={"contact_id": contact.id, "scope": scope, "state": current.state},
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


def is_customer_text(message: Any) -> bool:
    return bool(
        message.direction == "inbound" and message.source == "customer" and message.type == "text"
    )


def apply_optout_keyword(session: Session, message: Any) -> ConsentEvent | None:
    """If an inbound customer text is exactly an opt-out keyword, record the opt-out and
    queue a confirmation reply. Returns the new event (None when it was not a keyword or
    the contact had already opted out with this very message)."""
    if not is_customer_text(message):
        return None
    contact = session.get(Contact, message.contact_id)
    workspace = session.get(Workspace, message.workspace_id)
    if contact is None or workspace is None:
        return None
    keyword = match_optout_keyword(message.text, optout_keywords(workspace))
    if keyword is None or _already_recorded(session, message.id):
        return None
    event = do_record_consent(
        session,
        contact=contact,
        kind=ConsentKind.OPT_OUT,
        source=ConsentSource.KEYWORD,
        by_label="customer",
        note=f"wrote '{(message.text or '').strip()[:100]}'",
        message_id=message.id,
        at=message.timestamp,
    )
    _queue_confirmation(session, message, contact, workspace, keyword)
    return event


def apply_optout_keywords(
    session: Session, workspace_id: int, texts: Iterable[tuple[int, str | None]]
) -> list[ConsentEvent]:
    """`apply_optout_keyword` for freshly stored customer texts, given as (message id,
    text). Runs on the inbound hot path, so it queries nothing unless a text is short
    enough to be a keyword."""
    from puente.conversations.models import Message

    short = [(mid, text) for mid, text in texts if text and len(text) <= MAX_KEYWORD_LENGTH]
    if not short:
        return []
    keywords = _workspace_keywords(session, workspace_id)
    if keywords is None:
        return []
    wanted = _normalized(keywords)
    events = []
    for message_id, text in short:
        if normalize_keyword(text) not in wanted:
            continue
        message = session.get(Message, message_id)
        event = apply_optout_keyword(session, message) if message is not None else None
        if event is not None:
            events.append(event)
    return events


def _queue_confirmation(
    session: Session, message: Any, contact: Contact, workspace: Workspace, keyword: str
) -> None:
    from puente.conversations.models import MessageSource
    from puente.outbound.outbox.service import do_queue_message

    language = contact_language(contact, keyword)
    # The customer has just written, so the service window is open for a free-text reply.
    # If the reply cannot be queued (the number is offboarded, say), the opt-out still
    # stands: it must never be lost for want of a confirmation.
    try:
        with session.begin_nested():
            do_queue_message(
                session,
                workspace_id=workspace.id,
                message_type="text",
                content={"body": optout_confirmation(workspace, language)},
                conversation_id=message.conversation_id,
                source=MessageSource.BOT,
            )
    except PuenteError as exc:
        log.warning("opt-out confirmation for contact %s not queued: %s", contact.id, exc)


def record_optout_from_meta(session: Session, message: Any) -> ConsentEvent | None:
    """Record an opt-out when Meta refused `message` with 131050 (the user stopped
    marketing messages). Safe to call twice for the same failure."""
    codes = {e.get("code") for e in _errors_of(message)}
    if 131050 not in codes and "131050" not in codes:
        return None
    if _already_recorded(session, message.id):
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


def _already_recorded(session: Session, message_id: int | None) -> bool:
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
