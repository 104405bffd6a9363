"""The builder's form and a workflow definition, both ways. The page posts every card's
fields; `definition_data` reads them into the definition's JSON shape (each step keeps
only the fields its type uses), and `parse_definition` makes the Definition of it. The
other way, `editor_data` gives the cards what they show. Pure: no database, no request.

Field names: `name`, `description`, `start`, `trigger.<field>`, and per card (by its
position) `s<i>.<field>`, the options of a question as `s<i>.o<j>.<field>` and the
rows of conditions as `<prefix>.match` and `<prefix>.r<k>.<field|op|value>`, the prefix
being `trigger.conditions`, `s<i>.when` or `s<i>.conditions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from puente.automation.workflows.definition import (
    STEP_TYPES,
    Definition,
    Step,
    parse_definition,
)
from puente.errors import InvalidInput
from puente.web.i18n import N_

# What each step type uses besides its id, type, title and `when` conditions.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "send_message": ("text", "template", "next"),
    "send_template": ("template", "next"),
    "question": (
        "text",
        "options",
        "list_button",
        "retry_text",
        "on_invalid",
        "timeout_minutes",
        "on_timeout",
        "save_as",
        "next",
    ),
    "assign": ("agent_id", "team_id", "next"),
    "unassign": ("next",),
    "add_tag": ("tag", "next"),
    "remove_tag": ("tag", "next"),
    "set_field": ("field", "value", "next"),
    "note": ("text", "next"),
    "close": ("next",),
    "reopen": ("next",),
    "snooze": ("minutes", "next"),
    "bot_off": ("next",),
    "bot_on": ("next",),
    "wait": ("minutes", "seconds", "until", "next"),
    "branch": ("conditions", "next", "otherwise"),
    "jump": ("target",),
    "http": ("method", "url", "headers", "body", "timeout_seconds", "next"),
    "start_workflow": ("workflow_id", "next"),
    "end": (),
}
# Any step that does something can fail; these cannot, so they have no failure branch.
CANNOT_FAIL = frozenset({"branch", "jump", "end"})
for _type in STEP_TYPES:
    if _type not in CANNOT_FAIL:
        STEP_FIELDS[_type] += ("on_failure",)

TRIGGER_FIELDS: dict[str, tuple[str, ...]] = {
    "message_received": ("match", "keywords", "keyword_mode"),
    "tag_added": ("tag",),
    "field_changed": ("field",),
    "no_reply": ("minutes", "waiting_on"),
    "broadcast_reply": ("broadcast_id",),
}


def types_using(field: str) -> list[str]:
    """The step types whose card shows `field` (the page hides it for the others)."""
    return [t for t in STEP_TYPES if field in STEP_FIELDS[t]]


def trigger_types_using(field: str) -> list[str]:
    return [t for t, fields in TRIGGER_FIELDS.items() if field in fields]


class RawText(str):
    """What someone typed that could not be read (JSON, header or variable lines): kept
    as typed so the page shows it again beside its problem."""


Problem = dict[str, str]  # {"field": "steps.<id>.<field>", "message": msgid}


class _Reader:
    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        self.problems: list[Problem] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append({"field": where, "message": message})

    def text(self, key: str) -> str:
        """Browsers send a textarea's lines with CRLF; the definition keeps LF."""
        values = self.fields.get(key) or [""]
        return values[0].replace("\r\n", "\n").replace("\r", "\n")

    def word(self, key: str) -> str:
        return self.text(key).strip()

    def optional(self, key: str) -> str | None:
        return self.word(key) or None

    def number(self, key: str, where: str) -> int | str | None:
        value = self.word(key)
        if not value:
            return None
        if re.fullmatch(r"\d{1,9}", value):
            return int(value)
        self.problem(where, N_("Write a whole number."))
        return value

    def lines(self, key: str) -> list[str]:
        return [line.strip() for line in self.text(key).split("\n") if line.strip()]

    def indices(self, pattern: str) -> list[int]:
        """The numbers <n> of the keys matching `pattern` (a regex with one group)."""
        found = {int(m.group(1)) for key in self.fields if (m := re.fullmatch(pattern, key))}
        return sorted(found)

    def pairs(self, key: str, separator: str, where: str, message: str) -> dict[str, str] | str:
        """Lines of `name<separator>value` as a dict, or the text as typed when a line is
        not one (with `message` as its problem)."""
        found: dict[str, str] = {}
        for line in self.lines(key):
            name, sep, value = line.partition(separator)
            if not sep or not name.strip():
                self.problem(where, message)
                return RawText(self.text(key))
            found[name.strip()] = value.strip()
        return found


def fields_of(form: Any) -> dict[str, list[str]]:
    """starlette's FormData (or a test's plain dict) as lists of strings; files dropped."""
    getlist: Callable[[str], list[Any]] | None = getattr(form, "getlist", None)
    fields: dict[str, list[str]] = {}
    for key in form:
        values = getlist(key) if getlist is not None else form[key]
        if isinstance(values, str):
            values = [values]
        fields[key] = [v for v in values if isinstance(v, str)]
    return fields


def definition_data(form: Any) -> tuple[dict[str, Any], list[Problem]]:
    """The definition's JSON data from the builder's fields, and what could not be read
    (whole numbers, JSON, lines of headers or variables), each named by its place."""
    r = _Reader(fields_of(form))
    steps = [_step(r, i) for i in r.indices(r"s(\d+)\.id")]
    data: dict[str, Any] = {"version": 1, "trigger": _trigger(r), "steps": steps}
    start = r.optional("start")
    if start:
        data["start"] = start
    return data, r.problems


def definition_from_form(form: Any) -> Definition:
    """The Definition the builder's fields describe, or InvalidInput naming each problem
    (its `details`, as `parse_definition` gives them)."""
    data, problems = definition_data(form)
    if problems:
        raise InvalidInput("The workflow is not valid.", details=problems)
    return parse_definition(data)


def _trigger(r: _Reader) -> dict[str, Any]:
    kind = r.word("trigger.type") or "message_received"
    uses = TRIGGER_FIELDS.get(kind, ())
    trigger: dict[str, Any] = {"type": kind}
    if "match" in uses:
        trigger["match"] = r.word("trigger.match") or "any"
        if trigger["match"] == "keyword":
            trigger["keywords"] = r.lines("trigger.keywords")
            trigger["keyword_mode"] = r.word("trigger.keyword_mode") or "contains"
    if "tag" in uses:
        trigger["tag"] = r.optional("trigger.tag")
    if "field" in uses:
        trigger["field"] = r.optional("trigger.field")
    if "minutes" in uses:
        trigger["minutes"] = r.number("trigger.minutes", "trigger.minutes")
        trigger["waiting_on"] = r.word("trigger.waiting_on") or "team"
    if "broadcast_id" in uses:
        trigger["broadcast_id"] = r.number("trigger.broadcast_id", "trigger.broadcast_id")
    channel_ids = [int(v) for v in r.fields.get("trigger.channel_ids", []) if v.isdigit()]
    if channel_ids:
        trigger["channel_ids"] = channel_ids
    conditions = _conditions(r, "trigger.conditions")
    if conditions is not None:
        trigger["conditions"] = conditions
    return trigger


def _step(r: _Reader, i: int) -> dict[str, Any]:
    p = f"s{i}."
    step_id = r.word(p + "id") or f"step_{i + 1}"
    kind = r.word(p + "type")
    step: dict[str, Any] = {"id": step_id, "type": kind, "title": r.word(p + "title")}
    where = f"steps.{step_id}."
    for field in STEP_FIELDS.get(kind, ()):
        key = p + field
        if field in ("text", "retry_text", "url", "value", "list_button"):
            step[field] = r.text(key).strip()
        elif field in (
            "next",
            "on_invalid",
            "on_timeout",
            "otherwise",
            "target",
            "on_failure",
        ) or field in ("save_as", "tag", "field", "until"):
            step[field] = r.optional(key)
        elif field in (
            "timeout_minutes",
            "minutes",
            "seconds",
            "agent_id",
            "team_id",
            "workflow_id",
        ):
            step[field] = r.number(key, where + field)
        elif field == "method":
            step[field] = r.word(key) or "POST"
        elif field == "timeout_seconds":
            step[field] = _seconds(r, key, where + field)
        elif field == "headers":
            step[field] = r.pairs(
                key, ":", where + field, N_("Write each header as Name: value, one per line.")
            )
        elif field == "body":
            step[field] = _json(r, key, where + field)
        elif field == "template":
            step[field] = _template(r, p, where + field)
        elif field == "options":
            step[field] = _options(r, p)
        elif field == "conditions":
            step[field] = _conditions(r, p + "conditions")
    when = _conditions(r, p + "when")
    if when is not None:
        step["when"] = when
    return step


def _seconds(r: _Reader, key: str, where: str) -> float | str:
    value = r.word(key)
    if not value:
        return 10.0
    try:
        return float(value.replace(",", "."))
    except ValueError:
        r.problem(where, N_("Write a number of seconds."))
        return value


def _json(r: _Reader, key: str, where: str) -> Any:
    text = r.text(key).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        r.problem(where, N_("The body is not valid JSON."))
        return RawText(text)


def _template(r: _Reader, p: str, where: str) -> dict[str, Any] | None:
    chosen = r.word(p + "template")
    if not chosen:
        return None
    name, _, language = chosen.partition("|")
    variables = r.pairs(
        p + "template_variables",
        "=",
        where,
        N_("Write each variable as target = value, one per line (body.1 = {contact.name})."),
    )
    return {"name": name, "language": language, "variables": variables}


def _options(r: _Reader, p: str) -> list[dict[str, Any]]:
    """The options whose text is filled in (the page always offers an empty one more)."""
    options = []
    taken = {r.word(f"{p}o{j}.id") for j in r.indices(re.escape(p) + r"o(\d+)\.title")}
    for j in r.indices(re.escape(p) + r"o(\d+)\.title"):
        title = r.word(f"{p}o{j}.title")
        if not title:
            continue
        option_id = r.word(f"{p}o{j}.id") or _free_id("option", taken)
        taken.add(option_id)
        options.append({"id": option_id, "title": title, "next": r.optional(f"{p}o{j}.next")})
    return options


NO_VALUE_OPS = ("exists", "not_exists")
LIST_OPS = ("in", "not_in")
NUMBER_OPS = ("gt", "lt")


def _conditions(r: _Reader, prefix: str) -> dict[str, Any] | None:
    """The rows whose field is filled in (the page always offers an empty one more);
    None without any."""
    rules = []
    for k in r.indices(re.escape(prefix) + r"\.r(\d+)\.field"):
        field = r.word(f"{prefix}.r{k}.field")
        if not field:
            continue
        op = r.word(f"{prefix}.r{k}.op") or "eq"
        rules.append(
            {"field": field, "op": op, "value": rule_value(op, r.word(f"{prefix}.r{k}.value"))}
        )
    if not rules:
        return None
    return {"match": r.word(prefix + ".match") or "all", "rules": rules}


def rule_value(op: str, text: str) -> Any:
    """A condition's value as typed, in the shape its operator compares: none for
    exists, a list for in (comma-separated), a number for greater and less than."""
    if op in NO_VALUE_OPS:
        return None
    if op in LIST_OPS:
        return [part.strip() for part in text.split(",") if part.strip()]
    if op in NUMBER_OPS:
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    return text


def rule_text(value: Any) -> str:
    """A condition's value in its text box."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _free_id(base: str, taken: set[str]) -> str:
    n = 1
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


# -- what the cards show ---------------------------------------------------------------------

_STEP_DEFAULTS = {
    name: (field.default_factory() if field.default_factory else field.default)  # type: ignore[call-arg]
    for name, field in Step.model_fields.items()
}


def editor_data(data: dict[str, Any]) -> dict[str, Any]:
    """What the builder's fields show for `data` (a definition's JSON, or a form read back
    with its problems): every field of every step present, text boxes as text."""
    trigger = dict(data.get("trigger") or {})
    trigger.setdefault("type", "message_received")
    trigger["keywords_text"] = "\n".join(trigger.get("keywords") or [])
    trigger["rules"] = _rows(trigger.get("conditions"))
    trigger["match_rules"] = (trigger.get("conditions") or {}).get("match", "all")
    steps = [_card(step) for step in data.get("steps") or [] if isinstance(step, dict)]
    return {"trigger": trigger, "steps": steps, "start": data.get("start") or ""}


def _card(step: dict[str, Any]) -> dict[str, Any]:
    card = {**_STEP_DEFAULTS, **step}
    template = card.get("template") or None
    card["template_key"] = f"{template['name']}|{template['language']}" if template else ""
    variables = (template or {}).get("variables") or {}
    card["template_variables"] = _lines_of(variables, " = ")
    card["headers_text"] = _lines_of(card.get("headers") or {}, ": ")
    body = card.get("body")
    card["body_text"] = (
        body
        if isinstance(body, RawText)
        else ("" if body is None else json.dumps(body, indent=2, ensure_ascii=False))
    )
    card["when_rules"] = _rows(card.get("when"))
    card["when_match"] = (card.get("when") or {}).get("match", "all")
    card["branch_rules"] = _rows(card.get("conditions"))
    card["branch_match"] = (card.get("conditions") or {}).get("match", "all")
    card["options"] = [o for o in card.get("options") or [] if isinstance(o, dict)]
    return card


def _lines_of(pairs: Any, separator: str) -> str:
    if isinstance(pairs, RawText):
        return str(pairs)
    return "\n".join(f"{k}{separator}{v}" for k, v in dict(pairs).items())


def _rows(conditions: Any) -> list[dict[str, str]]:
    if not isinstance(conditions, dict):
        return []
    return [
        {
            "field": str(rule.get("field") or ""),
            "op": str(rule.get("op") or "eq"),
            "value": rule_text(rule.get("value")),
        }
        for rule in conditions.get("rules") or []
        if isinstance(rule, dict)
    ]


# -- the cards' own buttons: add, delete, move, remove a row -------------------------------------


def apply_action(data: dict[str, Any], action: str, new_type: str = "") -> str | None:
    """Change `data` as a card's button asks; returns the id of the step to show.

    `add_step` (of `new_type`) or `add_step:<type>`, `delete_step:<i>`, `move_up:<i>`,
    `move_down:<i>`, `remove_option:<i>:<j>`, `remove_rule:<prefix>:<k>`; `add_option:<i>`
    and `add_rule:<prefix>` change nothing (the page always has an empty row more) but
    come back to their step. Anything else (`save`) changes nothing.
    """
    steps: list[dict[str, Any]] = data["steps"]
    verb, _, rest = action.partition(":")
    if verb == "add_step":
        kind = rest or new_type
        if kind not in STEP_TYPES:
            return None
        step_id = _free_id(kind, {str(s.get("id")) for s in steps})
        steps.append({"id": step_id, "type": kind})
        return step_id
    if verb in ("remove_rule", "add_rule"):
        return _rule_action(data, verb, rest)
    args = [int(a) for a in rest.split(":") if a.isdigit()]
    if not args or args[0] >= len(steps):
        return None
    i = args[0]
    if verb == "delete_step":
        steps.pop(i)
        return str(steps[min(i, len(steps) - 1)]["id"]) if steps else None
    if verb in ("move_up", "move_down"):
        j = i - 1 if verb == "move_up" else i + 1
        if 0 <= j < len(steps):
            steps[i], steps[j] = steps[j], steps[i]
            return str(steps[j]["id"])
    if verb == "remove_option" and len(args) == 2:
        options = steps[i].get("options") or []
        if args[1] < len(options):
            options.pop(args[1])
    return str(steps[i]["id"])


def _rule_action(data: dict[str, Any], verb: str, rest: str) -> str | None:
    """`rest` is `<prefix>[:<row>]`, the prefix naming the conditions as the form does."""
    prefix, _, row = rest.rpartition(":") if verb == "remove_rule" else (rest, "", "")
    key = "conditions"
    holder: dict[str, Any] | None = None
    focus = None
    if prefix == "trigger.conditions":
        holder = data["trigger"]
    elif m := re.fullmatch(r"s(\d+)\.(when|conditions)", prefix):
        index, key = int(m.group(1)), m.group(2)
        if index < len(data["steps"]):
            holder = data["steps"][index]
            focus = str(holder["id"])
    conditions = (holder or {}).get(key)
    if verb == "add_rule" or holder is None or not isinstance(conditions, dict):
        return focus
    rules = conditions.get("rules") or []
    if row.isdigit() and int(row) < len(rules):
        rules.pop(int(row))
    if not rules:
        holder.pop(key, None)
    return focus
