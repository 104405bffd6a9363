"""A segment's filter as data: its parts, read from JSON (the API's, the stored one, or
the web form's) with every problem named by its place, and written back. Whether it
fits a workspace (numbers, fields) and what it selects are `puente.contacts.segments`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

from puente.contacts.models import ContactSource
from puente.conversations.models import ConversationStatus
from puente.errors import InvalidInput

CONSENT_STATES = ("opt_in", "opt_out", "unknown")
FIELD_OPS = ("equals", "set", "not_set")
LAST_MESSAGE_OPS = ("within", "before", "after")
STATUSES = tuple(s.value for s in ConversationStatus)
SOURCES = tuple(s.value for s in ContactSource)
MAX_NAME = 100
MAX_ITEMS = 50  # tags, fields, numbers in one filter
MAX_DAYS = 3650
KEYS = (
    "tags_any",
    "tags_all",
    "tags_none",
    "fields",
    "consent",
    "sources",
    "channel_ids",
    "last_message",
    "conversation_status",
)
# Written by earlier versions (and still accepted): `fields` as {key: value} (equals) and
# `opted_in: true` (consent opt_in).
LEGACY_KEYS = ("opted_in",)


@dataclass(frozen=True)
class FieldRule:
    key: str
    op: str  # one of FIELD_OPS
    value: str | None = None  # equals


@dataclass(frozen=True)
class LastMessage:
    op: str  # within (days), before or after (date, in the workspace's time zone)
    days: int | None = None
    date: dt.date | None = None


@dataclass(frozen=True)
class SegmentFilter:
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    fields: tuple[FieldRule, ...] = ()
    consent: str | None = None  # one of CONSENT_STATES, for marketing
    sources: tuple[str, ...] = ()  # any of them
    channel_ids: tuple[int, ...] = ()  # has a conversation on any of these numbers
    last_message: LastMessage | None = None
    conversation_status: tuple[str, ...] = ()  # has a conversation in any of these

    def as_json(self) -> dict[str, Any]:
        """The stored and API form, without the parts left empty."""
        data: dict[str, Any] = {}
        for key in ("tags_any", "tags_all", "tags_none", "sources", "conversation_status"):
            if getattr(self, key):
                data[key] = list(getattr(self, key))
        if self.channel_ids:
            data["channel_ids"] = list(self.channel_ids)
        if self.fields:
            data["fields"] = [
                {"key": r.key, "op": r.op, **({"value": r.value} if r.op == "equals" else {})}
                for r in self.fields
            ]
        if self.consent:
            data["consent"] = self.consent
        if self.last_message is not None:
            lm = self.last_message
            data["last_message"] = (
                {"op": lm.op, "days": lm.days}
                if lm.op == "within"
                else {"op": lm.op, "date": lm.date.isoformat() if lm.date else None}
            )
        return data


@dataclass(frozen=True)
class Problem:
    field: str  # where in the filter, e.g. "filter.last_message.date"
    message: str  # an English msgid with %(name)s placeholders
    params: dict[str, Any] = default(default_factory=dict)

    @property
    def text(self) -> str:
        return self.message % self.params if self.params else self.message


class FilterNotValid(InvalidInput):
    """The filter's problems, each with its place, for the API's details and the web form."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            "the segment's filter is not valid: " + "; ".join(p.text for p in problems),
            details=[{"field": p.field, "message": p.text} for p in problems],
        )
        self.problems = problems


class _Reader:
    """Reads a filter's JSON, noting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, where: str, message: str, **params: Any) -> None:
        self.problems.append(Problem(f"filter.{where}", message, params))

    def names(self, data: dict[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "Give a list of names.")
            return ()
        names = tuple(dict.fromkeys(v.strip() for v in value if v.strip()))
        if len(names) > MAX_ITEMS:
            self.fail(key, "At most %(max)d.", max=MAX_ITEMS)
        if any(len(n) > MAX_NAME for n in names):
            self.fail(key, "A name has at most %(max)d characters.", max=MAX_NAME)
        return names

    def choices(self, data: dict[str, Any], key: str, allowed: Sequence[str]) -> tuple[str, ...]:
        chosen = self.names(data, key)
        wrong = [c for c in chosen if c not in allowed]
        if wrong:
            self.fail(
                key,
                "“%(value)s” is not one of %(allowed)s.",
                value=wrong[0],
                allowed=", ".join(allowed),
            )
        return tuple(c for c in chosen if c in allowed)

    def fields(self, raw: Any) -> tuple[FieldRule, ...]:
        if isinstance(raw, dict):  # the earlier form, {key: value}
            raw = [{"key": k, "op": "equals", "value": v} for k, v in raw.items()]
        if not isinstance(raw, list):
            self.fail("fields", "Give a list of {key, op, value}.")
            return ()
        rules = []
        for index, item in enumerate(raw[: MAX_ITEMS + 1]):
            rule = self._field(index, item)
            if rule is not None:
                rules.append(rule)
        if len(raw) > MAX_ITEMS:
            self.fail("fields", "At most %(max)d.", max=MAX_ITEMS)
        return tuple(rules)

    def _field(self, index: int, item: Any) -> FieldRule | None:
        where = f"fields.{index}"
        if not isinstance(item, dict) or set(item) - {"key", "op", "value"}:
            self.fail(where, "Give a list of {key, op, value}.")
            return None
        key, op, value = item.get("key"), item.get("op") or "equals", item.get("value")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_NAME:
            self.fail(f"{where}.key", "Choose a contact field.")
            return None
        if op not in FIELD_OPS:
            self.fail(f"{where}.op", "Use equals, set or not_set.")
            return None
        if op != "equals":
            return FieldRule(key.strip(), op)
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float) or str(value).strip() == "":
            self.fail(f"{where}.value", "Give the value to compare with.")
            return None
        return FieldRule(key.strip(), op, str(value).strip()[:1024])

    def consent(self, data: dict[str, Any]) -> str | None:
        value = data.get("consent")
        if value is None and data.get("opted_in") is True:
            return "opt_in"
        if value in (None, ""):
            return None
        value = "unknown" if value == "none" else value
        if value not in CONSENT_STATES:
            self.fail("consent", "Use opt_in, opt_out or unknown.")
            return None
        return str(value)

    def channel_ids(self, data: dict[str, Any]) -> tuple[int, ...]:
        raw = data.get("channel_ids") or []
        if not isinstance(raw, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**62 for v in raw
        ):
            self.fail("channel_ids", "Give a list of number ids.")
            return ()
        if len(raw) > MAX_ITEMS:
            self.fail("channel_ids", "At most %(max)d.", max=MAX_ITEMS)
        return tuple(dict.fromkeys(raw))

    def last_message(self, raw: Any) -> LastMessage | None:
        if raw in (None, {}):
            return None
        if not isinstance(raw, dict) or set(raw) - {"op", "days", "date"}:
            self.fail("last_message", "Give {op: within, days} or {op: before or after, date}.")
            return None
        op = raw.get("op")
        if op not in LAST_MESSAGE_OPS:
            self.fail("last_message.op", "Use within, before or after.")
            return None
        if op == "within":
            days = raw.get("days")
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
                self.fail(
                    "last_message.days", "Give a number of days from 1 to %(max)d.", max=MAX_DAYS
                )
                return None
            return LastMessage("within", days=days)
        text = raw.get("date")
        try:
            date = dt.date.fromisoformat(str(text)) if isinstance(text, str) else None
        except ValueError:
            date = None
        if date is None or len(str(text)) != 10:
            self.fail(
                "last_message.date", "“%(value)s” is not a date (YYYY-MM-DD).", value=text or ""
            )
            return None
        if date.year < 2000:
            self.fail("last_message.date", "Give a date from 2000 on.")
            return None
        return LastMessage(str(op), date=date)


def parse_filter(data: Any) -> SegmentFilter:
    """The filter's shape checked (not yet against the workspace); raises FilterNotValid."""
    if not isinstance(data, dict):
        raise FilterNotValid([Problem("filter", "A segment's filter is an object.")])
    reader = _Reader()
    unknown = sorted(set(data) - set(KEYS) - set(LEGACY_KEYS))
    if unknown:
        reader.fail(
            unknown[0],
            "Unknown filter “%(key)s”; use %(allowed)s.",
            key=unknown[0],
            allowed=", ".join(KEYS),
        )
    parsed = SegmentFilter(
        tags_any=reader.names(data, "tags_any"),
        tags_all=reader.names(data, "tags_all"),
        tags_none=reader.names(data, "tags_none"),
        fields=reader.fields(data.get("fields") or []),
        consent=reader.consent(data),
        sources=reader.choices(data, "sources", SOURCES),
        channel_ids=reader.channel_ids(data),
        last_message=reader.last_message(data.get("last_message")),
        conversation_status=reader.choices(data, "conversation_status", STATUSES),
    )
    if reader.problems:
        raise FilterNotValid(reader.problems)
    return parsed
