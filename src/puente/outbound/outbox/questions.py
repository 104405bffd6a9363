"""Questions with options that agents build in the composer: up to 3 options go as reply
buttons, up to 10 as a list. Meta's limits (protocol §7) are checked here, each problem
in words an agent can act on, before the interactive message is queued in the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from puente.errors import InvalidInput

MAX_BODY = 1024
MAX_HEADER = 60
MAX_FOOTER = 60
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_LIST_BUTTON = 20
MAX_SECTION_TITLE = 24


# Each message names its field, so the Spanish catalog translates it whole.
_LONG_BODY = "The question is too long: %(count)s characters, at most %(limit)s."
_LONG_HEADER = "The header is too long: %(count)s characters, at most %(limit)s."
_LONG_FOOTER = "The footer is too long: %(count)s characters, at most %(limit)s."
_LONG_OPTION = "Option %(n)s is too long: %(count)s characters, at most %(limit)s."
_LONG_LIST_BUTTON = "The list button is too long: %(count)s characters, at most %(limit)s."
_LONG_SECTION = "The section title is too long: %(count)s characters, at most %(limit)s."
_LONG_DESCRIPTION = (
    "The description of option %(n)s is too long: %(count)s characters, at most %(limit)s."
)


@dataclass
class Question:
    body: str
    options: list[str]
    descriptions: list[str] = field(default_factory=list)
    style: str = "buttons"  # "buttons" or "list"
    header: str = ""
    footer: str = ""
    list_button: str = ""
    section_title: str = ""


@dataclass(frozen=True)
class Problem:
    template: str  # a msgid: the web layer translates it
    params: dict[str, Any]


def _too_long(problems: list[Problem], msgid: str, value: str, limit: int, **params: Any) -> None:
    if len(value) > limit:
        problems.append(Problem(msgid, {**params, "count": len(value), "limit": limit}))


def question_problems(q: Question) -> list[Problem]:
    """Everything wrong with the question, in the order the form shows the fields."""
    problems: list[Problem] = []
    if not q.body:
        problems.append(Problem("Write the question first.", {}))
    _too_long(problems, _LONG_BODY, q.body, MAX_BODY)
    _too_long(problems, _LONG_HEADER, q.header, MAX_HEADER)
    _too_long(problems, _LONG_FOOTER, q.footer, MAX_FOOTER)
    if not q.options:
        problems.append(Problem("Give at least one option.", {}))
    if q.style == "buttons":
        if len(q.options) > MAX_BUTTONS:
            problems.append(
                Problem(
                    "Reply buttons hold at most 3 options; send up to 10 as a list.",
                    {},
                )
            )
        for n, title in enumerate(q.options, start=1):
            _too_long(problems, _LONG_OPTION, title, MAX_BUTTON_TITLE, n=n)
    else:
        if len(q.options) > MAX_ROWS:
            problems.append(Problem("A list holds at most 10 options.", {}))
        if not q.list_button:
            problems.append(Problem("Name the button that opens the list.", {}))
        _too_long(problems, _LONG_LIST_BUTTON, q.list_button, MAX_LIST_BUTTON)
        _too_long(problems, _LONG_SECTION, q.section_title, MAX_SECTION_TITLE)
        for n, title in enumerate(q.options, start=1):
            _too_long(problems, _LONG_OPTION, title, MAX_ROW_TITLE, n=n)
        for n, text in enumerate(q.descriptions, start=1):
            _too_long(problems, _LONG_DESCRIPTION, text, MAX_ROW_DESCRIPTION, n=n)
    folded = [t.casefold() for t in q.options]
    if len(set(folded)) != len(folded):
        problems.append(Problem("Two options have the same text; each must differ.", {}))
    return problems


def check_question(q: Question) -> dict[str, Any]:
    """The `interactive` wire object, or InvalidInput naming the first problem (all of
    them in details)."""
    problems = question_problems(q)
    if problems:
        first = problems[0]
        raise InvalidInput(
            first.template % first.params if first.params else first.template,
            details={
                "template": first.template,
                "params": first.params,
                "problems": [{"template": p.template, "params": p.params} for p in problems],
            },
        )
    return _wire(q)


def _wire(q: Question) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": "button" if q.style == "buttons" else "list"}
    if q.header:
        wire["header"] = {"type": "text", "text": q.header}
    wire["body"] = {"text": q.body}
    if q.footer:
        wire["footer"] = {"text": q.footer}
    if q.style == "buttons":
        wire["action"] = {
            "buttons": [
                {"type": "reply", "reply": {"id": f"opt-{n}", "title": title}}
                for n, title in enumerate(q.options, start=1)
            ]
        }
        return wire
    rows: list[dict[str, Any]] = []
    for n, title in enumerate(q.options, start=1):
        row: dict[str, Any] = {"id": f"opt-{n}", "title": title}
        description = q.descriptions[n - 1] if n <= len(q.descriptions) else ""
        if description:
            row["description"] = description
        rows.append(row)
    section: dict[str, Any] = {"rows": rows}
    if q.section_title:
        section["title"] = q.section_title
    wire["action"] = {"button": q.list_button, "sections": [section]}
    return wire


def question_from_form(
    body: str,
    options: Sequence[str],
    descriptions: Sequence[str],
    *,
    style: str,
    header: str = "",
    footer: str = "",
    list_button: str = "",
    section_title: str = "",
) -> Question:
    """The question as the agent filled it: blank option rows are skipped (with their
    descriptions), everything trimmed."""
    pairs = [
        (title.strip(), (descriptions[i] if i < len(descriptions) else "").strip())
        for i, title in enumerate(options)
    ]
    kept = [(t, d) for t, d in pairs if t]
    return Question(
        body=body.strip(),
        options=[t for t, _ in kept],
        descriptions=[d for _, d in kept],
        style="list" if style == "list" else "buttons",
        header=header.strip(),
        footer=footer.strip(),
        list_button=list_button.strip(),
        section_title=section_title.strip(),
    )
