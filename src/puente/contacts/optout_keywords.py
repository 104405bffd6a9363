"""Opt-out keywords: a customer whose whole message is STOP, BAJA (or one of the workspace's
own words) is opted out of marketing and told so, in their language, by a reply queued in
the outbox."""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.contacts.consent import ConsentSource, do_record_consent, optout_recorded_for
from puente.contacts.models import ConsentEvent, ConsentKind, Contact
from puente.conversations.models import Message, MessageSource
from puente.errors import PuenteError
from puente.outbound.outbox.service import do_queue_message

log = logging.getLogger(__name__)

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
    if keyword is None or optout_recorded_for(session, message.id):
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
