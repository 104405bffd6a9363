"""Translations (Babel catalogs in puente/locale) and locale-aware date formatting.

The .mo files are committed; when one is missing or older than its .po (someone edited
a translation), the catalog is compiled in memory at import, so nobody needs a build step.
"""

from __future__ import annotations

import datetime as dt
import gettext as gettext_module
import io
import zoneinfo
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from puente.errors import PuenteError

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def _load(lang: str) -> gettext_module.NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return gettext_module.GNUTranslations(fh)
    if not po.exists():
        return gettext_module.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext_module.GNUTranslations(buf)


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> gettext_module.NullTranslations:
    return _load(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def N_(message: str) -> str:
    """Mark a message for the catalogue (scripts/i18n.py extracts it) that is translated
    later, where it is shown: a confirmation passed along, a label in a table."""
    return message


def error_message(lang: str, exc: PuenteError) -> str:
    """A domain error in the reader's language. An error whose message has numbers or
    names in it carries its catalogue text and values in details ("template", "params")."""
    tr = translations(lang)
    details = exc.details if isinstance(exc.details, dict) else {}
    template = details.get("template")
    if isinstance(template, str):
        return tr.gettext(template) % (details.get("params") or {})
    if exc.params:  # raised as NotFound("no template %(id)s ...", params={"id": 7})
        return tr.gettext(exc.template) % exc.params
    return tr.gettext(exc.message)


def pick_language(user_choice: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The user's chosen language, else the browser's preference, else English."""
    for choice in (user_choice, cookie):
        if choice in LANGUAGES:
            return choice
    return negotiate(accept_language or "")


def negotiate(accept_language: str) -> str:
    weighted: list[tuple[float, int, str]] = []
    for n, part in enumerate(accept_language.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag:
            weighted.append((-q, n, tag))
    for neg_q, _n, tag in sorted(weighted):
        primary = tag.split("-")[0]
        if neg_q < 0 and primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


def safe_zone(name: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def format_when(
    value: dt.datetime | None, lang: str, timezone: str | None, fmt: str = "medium"
) -> str:
    """A UTC timestamp shown in the viewer's time zone and language."""
    if value is None:
        return ""
    return str(format_datetime(value, fmt, tzinfo=safe_zone(timezone), locale=Locale.parse(lang)))


def common_timezones() -> list[str]:
    zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z and "Etc" not in z)
    return [*zones, "UTC"]
