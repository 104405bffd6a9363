"""What a run's steps see: its contact, conversation and workspace, the answers and
HTTP results gathered so far; the `{variables}` written in its texts, and its conditions.

Variables use the broadcasts' syntax, `{name|fallback}`: `{contact.name}`,
`{contact.first_name}`, `{contact.phone}`, `{custom.<field>}`, `{agent.name}`,
`{answer.<step>}`, `{http.<step>.<field>}` (dots go into nested objects) and
`{vars.<name>}` (given when the run was started through the API). A variable without a
value and without a fallback is left out: an automatic message is still sent.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from puente.accounts.models import User, Workspace
from puente.automation.hours import cached_hours, is_open
from puente.automation.workflows.definition import Conditions, Rule
from puente.automation.workflows.models import WorkflowRun
from puente.channels.models import Channel
from puente.contacts.consent import consent_state
from puente.contacts.models import Contact
from puente.contacts.segments import contact_in_segments
from puente.contacts.service import cached_tags
from puente.conversations.incoming import contacts_stored
from puente.conversations.models import Conversation

_FIELD = re.compile(r"\{([^{}|\s][^{}|]*?)\s*(?:\|([^{}]*))?\}")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEGMENT_FIELD = "contact.segment"
SEGMENT_OPS = ("eq", "ne", "in", "not_in")


def fold(text: str) -> str:
    """Lower case without accents, spaces squeezed: how answers and keywords compare."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(plain.split())


@dataclass
class RunContext:
    session: Session
    workspace_id: int
    now: dt.datetime
    contact: Contact | None
    conversation: Conversation | None
    variables: dict[str, Any]
    message_text: str | None = None  # the message that started the run, if any
    run: WorkflowRun | None = None  # when set, its variables as they are now
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def vars(self) -> dict[str, Any]:
        # The engine replaces a run's variables as steps go (see engine._set_vars).
        return self.run.variables if self.run is not None else self.variables

    @classmethod
    def of_run(cls, session: Session, run: WorkflowRun, now: dt.datetime) -> RunContext:
        contact = session.get(Contact, run.contact_id) if run.contact_id else None
        conversation = (
            session.get(Conversation, run.conversation_id) if run.conversation_id else None
        )
        return cls(
            session=session,
            workspace_id=run.workspace_id,
            now=now,
            contact=contact,
            conversation=conversation,
            variables=run.variables,
            message_text=run.variables.get("message_text"),
            run=run,
        )

    # -- values ----------------------------------------------------------------------------

    def value(self, name: str) -> Any:
        """The value a variable or a condition's field names; None when it has none."""
        name = unicodedata.normalize("NFC", name.strip())
        key = name.lower()
        contact = self.contact
        if key in ("contact.name", "name"):
            return _name_of(contact) if contact else None
        if key in ("contact.first_name", "first_name"):
            full = _name_of(contact) if contact else None
            return full.split()[0] if full else None
        if key in ("contact.phone", "phone"):
            return "+" + contact.wa_id if contact is not None and contact.wa_id else None
        if key == "contact.tags":
            return self._tags()
        if key == "contact.consent":
            return consent_state(self.session, contact.id) if contact else None
        if key.startswith("custom."):
            custom = (contact.custom_fields or {}) if contact else {}
            return custom.get(name[7:])
        if key == "agent.name":
            return self._agent_name()
        if key == "channel.id":
            return self.conversation.channel_id if self.conversation else None
        if key.startswith("conversation."):
            attr = key[13:]
            if self.conversation is None or attr not in ("status", "assignee_id", "team_id"):
                return None
            return getattr(self.conversation, attr)
        if key == "time.hhmm":
            return self._local_now().strftime("%H:%M")
        if key == "time.weekday":
            return WEEKDAYS[self._local_now().weekday()]
        if key == "business_hours":
            return self._business_hours()
        if key == "message.text":
            return self.message_text
        if key.startswith("answer."):
            return (self.vars.get("answers") or {}).get(name[7:])
        if key.startswith("http."):
            return _dig(self.vars.get("http") or {}, name[5:].split("."))
        if key.startswith("vars."):
            return _dig(self.vars.get("vars") or {}, name[5:].split("."))
        return None

    def render(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            value = self.value(match.group(1))
            if value in (None, ""):
                return match.group(2) or ""
            if isinstance(value, list):
                return ", ".join(str(v) for v in value)
            return str(value)

        return _FIELD.sub(replace, text).strip()

    def render_data(self, data: Any) -> Any:
        """A JSON body with every string's variables filled in."""
        if isinstance(data, str):
            return self.render(data)
        if isinstance(data, list):
            return [self.render_data(item) for item in data]
        if isinstance(data, dict):
            return {str(k): self.render_data(v) for k, v in data.items()}
        return data

    # -- conditions ------------------------------------------------------------------------

    def holds(self, conditions: Conditions | None) -> bool:
        if conditions is None or not conditions.rules:
            return True
        results = (self._rule(rule) for rule in conditions.rules)
        return all(results) if conditions.match == "all" else any(results)

    def _rule(self, rule: Rule) -> bool:
        if rule.field.strip().lower() == SEGMENT_FIELD:
            return self._in_segment(rule)
        actual = self.value(rule.field)
        return compare(actual, rule.op, rule.value)

    def _in_segment(self, rule: Rule) -> bool:
        """`contact.segment` asks the database whether the contact matches the segments'
        filters now (eq / in: any of them; ne / not_in: none of them)."""
        if self.contact is None or rule.op not in SEGMENT_OPS:
            return False
        inside = contact_in_segments(
            self.session, self.workspace_id, self.contact.id, segment_refs(rule.value)
        )
        return inside if rule.op in ("eq", "in") else not inside

    # -- helpers ---------------------------------------------------------------------------

    def _tags(self) -> list[str]:
        if self.contact is None:
            return []
        # Read with the tags of the other contacts this transaction stored messages of
        # (an ingest batch), or that the worker's batch preloaded: one query a batch.
        return cached_tags(self.session, self.contact.id, contacts_stored(self.session))

    def _agent_name(self) -> str | None:
        if self.conversation is None or self.conversation.assignee_id is None:
            return None
        user = self.session.get(User, self.conversation.assignee_id)
        return user.name if user is not None else None

    def workspace(self) -> Workspace | None:
        return self.session.get(Workspace, self.workspace_id)

    def time_zone(self) -> str:
        channel = self.channel()
        hours = cached_hours(self.session, channel) if channel is not None else None
        if hours is not None:
            return hours.time_zone
        workspace = self.workspace()
        return workspace.timezone if workspace is not None else "UTC"

    def _local_now(self) -> dt.datetime:
        try:
            return self.now.astimezone(ZoneInfo(self.time_zone()))
        except (KeyError, ValueError):
            return self.now

    def channel(self) -> Channel | None:
        if self.conversation is None:
            return None
        return self.session.get(Channel, self.conversation.channel_id)

    def _business_hours(self) -> str | None:
        channel = self.channel()
        hours = cached_hours(self.session, channel) if channel is not None else None
        if hours is None:
            return "open"  # a number without hours is always open
        return "open" if is_open(hours, self.now) else "closed"


def _name_of(contact: Contact) -> str | None:
    return contact.name or contact.business_app_name or contact.profile_name or None


def _dig(data: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        return na == nb
    return fold(str(a)) == fold(str(b))


def segment_refs(value: Any) -> list[Any]:
    """The segments a `contact.segment` rule names: one, a list, or "a, b"."""
    return _choices(value)


def _choices(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def compare(actual: Any, op: str, expected: Any) -> bool:
    """One condition: strings compare without case or accents, numbers as numbers, and a
    list (the contact's tags) contains or equals by its elements."""
    if op == "exists":
        return actual not in (None, "", [])
    if op == "not_exists":
        return actual in (None, "", [])
    if op in ("eq", "ne"):
        if isinstance(actual, list):
            result = any(_same(item, expected) for item in actual)
        else:
            result = _same(actual, expected)
        return result if op == "eq" else not result
    if op in ("contains", "not_contains"):
        if isinstance(actual, list):
            found = any(_same(item, expected) for item in actual)
        else:
            found = actual is not None and fold(str(expected or "")) in fold(str(actual))
        return found if op == "contains" else not found
    if op in ("in", "not_in"):
        options = _choices(expected)
        items = actual if isinstance(actual, list) else [actual]
        found = any(_same(item, option) for item in items for option in options)
        return found if op == "in" else not found
    if op in ("gt", "lt"):
        if actual is None or expected is None:
            return False
        na, nb = _as_number(actual), _as_number(expected)
        if na is not None and nb is not None:
            return na > nb if op == "gt" else na < nb
        sa, sb = fold(str(actual)), fold(str(expected))
        return sa > sb if op == "gt" else sa < sb
    return False
