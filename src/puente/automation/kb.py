"""The knowledge base a workspace's bot answers from: its entries (an answer and the
phrasings a customer may ask it in, Spanish or English), the bot's settings, and the JSON
files the command line exports and imports. The bot itself is in kb_bot.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.accounts.models import Workspace
from puente.automation.kb_models import KbEntry, KbLanguage, KbPhrasing
from puente.automation.kb_search import index_phrasings
from puente.errors import InvalidInput, NotFound

SETTINGS_KEY = "kb_bot"
MAX_PHRASINGS = 20
MAX_PHRASING = 500
MAX_ANSWER = 4096  # WhatsApp's limit for a text message's body
MAX_HANDOFF = 1000
MAX_UNANSWERED = 20
EXPORT_VERSION = 1
LANGUAGES = tuple(lang.value for lang in KbLanguage)
DEFAULT_HANDOFF = {
    "es": "Te paso con una persona del equipo; te responderá en breve.",
    "en": "I'm passing you to a person on our team, who will answer you shortly.",
}


def kb_refusal(where: str, message: str, **params: Any) -> InvalidInput:
    said = message % params if params else message
    return InvalidInput(message, params=params, details=[{"field": where, "message": said}])


# -- the bot's settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class BotSettings:
    enabled: bool = False
    # The least score (0 to 1) an entry needs for the bot to answer with it.
    threshold: float = 0.5
    # Questions in a row the bot could not answer before it hands the conversation over.
    max_unanswered: int = 2
    handoff_es: str = DEFAULT_HANDOFF["es"]
    handoff_en: str = DEFAULT_HANDOFF["en"]

    def handoff_text(self, language: str) -> str:
        return self.handoff_en if language == "en" else self.handoff_es

    def as_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "threshold": self.threshold,
            "max_unanswered": self.max_unanswered,
            "handoff": {"es": self.handoff_es, "en": self.handoff_en},
        }


def bot_settings(workspace: Workspace) -> BotSettings:
    raw = (workspace.settings or {}).get(SETTINGS_KEY)
    if not isinstance(raw, dict):
        return BotSettings()
    try:
        return check_bot_settings(raw)
    except InvalidInput:
        # Settings written by an older Puente that this one would refuse: the bot stays
        # off rather than guess.
        return BotSettings()


def check_bot_settings(raw: Mapping[str, Any]) -> BotSettings:
    try:
        threshold = float(raw.get("threshold", BotSettings.threshold))
    except (TypeError, ValueError):
        raise kb_refusal("threshold", "The confidence threshold is a number from 0 to 1.") from None
    if not 0 <= threshold <= 1:
        raise kb_refusal("threshold", "The confidence threshold is a number from 0 to 1.")
    try:
        max_unanswered = int(raw.get("max_unanswered", BotSettings.max_unanswered))
    except (TypeError, ValueError):
        max_unanswered = 0
    if not 1 <= max_unanswered <= MAX_UNANSWERED:
        raise kb_refusal(
            "max_unanswered",
            "Unanswered questions before a handoff: a whole number from 1 to %(n)s.",
            n=MAX_UNANSWERED,
        )
    handoff = raw.get("handoff") or {}
    texts = {}
    for lang in LANGUAGES:
        given = handoff.get(lang) if isinstance(handoff, dict) else None
        texts[lang] = str(given).strip() if given else DEFAULT_HANDOFF[lang]
        if len(texts[lang]) > MAX_HANDOFF:
            raise kb_refusal(
                f"handoff.{lang}",
                "A handoff message has at most %(n)s characters.",
                n=MAX_HANDOFF,
            )
    return BotSettings(
        enabled=bool(raw.get("enabled", False)),
        threshold=round(threshold, 3),
        max_unanswered=max_unanswered,
        handoff_es=texts["es"],
        handoff_en=texts["en"],
    )


def do_save_bot_settings(
    session: Session, workspace: Workspace, settings: BotSettings, actor: Any = None
) -> None:
    # A new dict, so that the JSON column is seen as changed.
    workspace.settings = {**(workspace.settings or {}), SETTINGS_KEY: settings.as_json()}
    if actor is not None:
        audit.record(
            session,
            workspace_id=workspace.id,
            actor=actor,
            action=Action.BOT_SETTINGS_CHANGED,
            target="knowledge-base bot",
            details={"enabled": settings.enabled, "threshold": settings.threshold},
        )


# -- entries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryData:
    language: str
    phrasings: tuple[str, ...]
    answer: str
    enabled: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "phrasings": list(self.phrasings),
            "answer": self.answer,
            "enabled": self.enabled,
        }


def check_entry(
    *, language: Any, phrasings: Any, answer: Any, enabled: Any = True, prefix: str = ""
) -> EntryData:
    """An entry as given (a form, the API, a file), checked: the field named in each
    refusal carries `prefix` ("entries.3.") when it comes from a file."""
    if language not in LANGUAGES:
        raise kb_refusal(prefix + "language", "The language is es (Spanish) or en (English).")
    if isinstance(phrasings, str):
        phrasings = phrasings.splitlines()
    if not isinstance(phrasings, list | tuple) or not all(isinstance(p, str) for p in phrasings):
        raise kb_refusal(prefix + "phrasings", "Phrasings are a list of texts.")
    unique = tuple(dict.fromkeys(" ".join(p.split()) for p in phrasings if p.strip()))
    if not unique:
        raise kb_refusal(prefix + "phrasings", "Write at least one way of asking the question.")
    if len(unique) > MAX_PHRASINGS:
        raise kb_refusal(
            prefix + "phrasings", "An entry has at most %(n)s phrasings.", n=MAX_PHRASINGS
        )
    if any(len(p) > MAX_PHRASING for p in unique):
        raise kb_refusal(
            prefix + "phrasings", "A phrasing has at most %(n)s characters.", n=MAX_PHRASING
        )
    text = answer.strip() if isinstance(answer, str) else ""
    if not text:
        raise kb_refusal(prefix + "answer", "Write the answer the bot sends.")
    if len(text) > MAX_ANSWER:
        raise kb_refusal(prefix + "answer", "An answer has at most %(n)s characters.", n=MAX_ANSWER)
    if not isinstance(enabled, bool):
        raise kb_refusal(prefix + "enabled", "Enabled is true or false.")
    return EntryData(language, unique, text, enabled)


@dataclass(frozen=True)
class EntryView:
    entry: KbEntry
    phrasings: list[str]

    def data(self) -> EntryData:
        e = self.entry
        return EntryData(e.language, tuple(self.phrasings), e.answer, e.enabled)


def list_entries(session: Session, workspace_id: int) -> list[EntryView]:
    entries = list(
        session.scalars(
            select(KbEntry).where(KbEntry.workspace_id == workspace_id).order_by(KbEntry.id)
        )
    )
    by_entry = _phrasings_of(session, workspace_id, [e.id for e in entries])
    return [EntryView(e, by_entry.get(e.id, [])) for e in entries]


def access_entry(session: Session, workspace_id: int, entry_id: int) -> EntryView:
    entry = session.scalar(
        select(KbEntry).where(KbEntry.id == entry_id, KbEntry.workspace_id == workspace_id)
    )
    if entry is None:
        raise NotFound("There is no such entry in this workspace.", code="unknown_entry")
    return EntryView(entry, _phrasings_of(session, workspace_id, [entry.id]).get(entry.id, []))


def _phrasings_of(session: Session, workspace_id: int, ids: Iterable[int]) -> dict[int, list[str]]:
    wanted = list(ids)
    found: dict[int, list[str]] = {}
    if not wanted:
        return found
    rows = session.execute(
        select(KbPhrasing.entry_id, KbPhrasing.text)
        .where(KbPhrasing.workspace_id == workspace_id, KbPhrasing.entry_id.in_(wanted))
        .order_by(KbPhrasing.entry_id, KbPhrasing.position)
    )
    for entry_id, text in rows:
        found.setdefault(entry_id, []).append(text)
    return found


def _write_phrasings(session: Session, entry: KbEntry, phrasings: Sequence[str]) -> None:
    # Replaced whole: the old rows (and, by trigger, their index rows) go, new ones come.
    session.execute(
        delete(KbPhrasing).where(
            KbPhrasing.workspace_id == entry.workspace_id, KbPhrasing.entry_id == entry.id
        )
    )
    rows = [
        KbPhrasing(
            workspace_id=entry.workspace_id,
            entry_id=entry.id,
            language=entry.language,
            text=text,
            position=n,
        )
        for n, text in enumerate(phrasings)
    ]
    session.add_all(rows)
    session.flush()
    index_phrasings(session, rows)


def _audit_entry(session: Session, actor: Any, entry: KbEntry, action: str, **details: Any) -> None:
    if actor is None:
        return
    audit.record(
        session,
        workspace_id=entry.workspace_id,
        actor=actor,
        action=action,
        target=f"kb entry {entry.id}",
        details=details,
    )


def do_create_entry(
    session: Session, workspace_id: int, data: EntryData, actor: Any = None
) -> EntryView:
    entry = KbEntry(
        workspace_id=workspace_id, language=data.language, answer=data.answer, enabled=data.enabled
    )
    session.add(entry)
    session.flush()
    _write_phrasings(session, entry, data.phrasings)
    _audit_entry(session, actor, entry, Action.KB_ENTRY_CREATED, phrasings=len(data.phrasings))
    return EntryView(entry, list(data.phrasings))


def do_update_entry(
    session: Session, view: EntryView, data: EntryData, actor: Any = None
) -> EntryView:
    entry = view.entry
    entry.language, entry.answer, entry.enabled = data.language, data.answer, data.enabled
    session.flush()
    _write_phrasings(session, entry, data.phrasings)
    _audit_entry(session, actor, entry, Action.KB_ENTRY_UPDATED, phrasings=len(data.phrasings))
    return EntryView(entry, list(data.phrasings))


def do_delete_entry(session: Session, view: EntryView, actor: Any = None) -> None:
    entry = view.entry
    _audit_entry(session, actor, entry, Action.KB_ENTRY_DELETED)
    # Phrasings first, so that SQLite's trigger takes their index rows along.
    session.execute(
        delete(KbPhrasing).where(
            KbPhrasing.workspace_id == entry.workspace_id, KbPhrasing.entry_id == entry.id
        )
    )
    session.delete(entry)
    session.flush()


# -- files ----------------------------------------------------------------------------------

_FILE_FIELDS = frozenset({"version", "entries"})
_ENTRY_FIELDS = frozenset({"language", "phrasings", "answer", "enabled"})


def export_entries(session: Session, workspace_id: int) -> dict[str, Any]:
    return {
        "version": EXPORT_VERSION,
        "entries": [view.data().as_json() for view in list_entries(session, workspace_id)],
    }


def check_import(data: Any) -> list[EntryData]:
    """The entries of an exported file, refused whole with the first problem named."""
    if not isinstance(data, dict):
        raise kb_refusal("", "The file is not a knowledge-base export (a JSON object).")
    unknown = sorted(set(data) - _FILE_FIELDS)
    if unknown:
        raise kb_refusal(unknown[0], "Unknown field %(field)s.", field=unknown[0])
    if data.get("version") != EXPORT_VERSION:
        raise kb_refusal(
            "version",
            "This file is version %(got)s; Puente reads version %(want)s.",
            got=data.get("version"),
            want=EXPORT_VERSION,
        )
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise kb_refusal("entries", "Entries are a list.")
    checked = []
    for n, raw in enumerate(entries):
        prefix = f"entries.{n}."
        if not isinstance(raw, dict):
            raise kb_refusal(prefix.rstrip("."), "An entry is an object.")
        extra = sorted(set(raw) - _ENTRY_FIELDS)
        if extra:
            raise kb_refusal(prefix + extra[0], "Unknown field %(field)s.", field=extra[0])
        checked.append(
            check_entry(
                language=raw.get("language"),
                phrasings=raw.get("phrasings"),
                answer=raw.get("answer"),
                enabled=raw.get("enabled", True),
                prefix=prefix,
            )
        )
    return checked


def do_import_entries(
    session: Session, workspace_id: int, entries: Sequence[EntryData], *, replace: bool = False
) -> tuple[int, int]:
    """Add the entries (an entry whose language and phrasings are already there is
    updated instead); with `replace`, first delete every entry. Returns (added, updated)."""
    if replace:
        for view in list_entries(session, workspace_id):
            do_delete_entry(session, view)
    known = {
        (view.entry.language, frozenset(view.phrasings)): view
        for view in list_entries(session, workspace_id)
    }
    added = updated = 0
    for data in entries:
        same = known.get((data.language, frozenset(data.phrasings)))
        if same is None:
            known[(data.language, frozenset(data.phrasings))] = do_create_entry(
                session, workspace_id, data
            )
            added += 1
        else:
            do_update_entry(session, same, data)
            updated += 1
    return added, updated
