"""Where each problem goes on the builder's page: beside the trigger's field, beside a
card's field, on top of a card, and all of them in the list at the top.

A problem names its place as the checks do (`steps.<id>.<field>`) or as the definition's
parser does (`steps.<index>.<field>`); both find their card."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from puente.web.workflows.form import STEP_FIELDS, TRIGGER_FIELDS
from puente.web.workflows.words import STEP_LABELS, Translate, problem_text

_MISSING_TARGET = re.compile(r"^It goes to “(.*)”, which is not a step\.$")


@dataclass
class Placed:
    text: str
    anchor: str  # the element id the list at the top links to
    where: str  # "Trigger", "Step 2 · Ask a question"


@dataclass
class PlacedProblems:
    listed: list[Placed] = field(default_factory=list)
    trigger: dict[str, list[str]] = field(default_factory=dict)  # field -> texts
    cards: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # index -> field -> texts

    def card(self, index: int, name: str) -> list[str]:
        return self.cards.get(index, {}).get(name, [])

    def card_top(self, index: int, step_type: str) -> list[str]:
        """A card's problems that no field of its type shows."""
        shown = {"title", "when", *STEP_FIELDS.get(step_type, ())}
        return [
            t
            for name, texts in self.cards.get(index, {}).items()
            if name not in shown
            for t in texts
        ]

    def trigger_top(self, trigger_type: str) -> list[str]:
        shown = {"conditions", "channel_ids", *TRIGGER_FIELDS.get(trigger_type, ())}
        return [t for name, texts in self.trigger.items() if name not in shown for t in texts]


def place(
    _: Translate, details: list[dict[str, Any]], steps: list[dict[str, Any]]
) -> PlacedProblems:
    placed = PlacedProblems()
    ids = [str(step.get("id", "")) for step in steps]
    ordered: list[tuple[int, Placed]] = []
    for detail in details:
        where = str(detail.get("field") or "")
        text = problem_text(_, str(detail.get("message") or ""))
        parts = where.split(".")
        if parts[0] == "trigger":
            name = parts[1] if len(parts) > 1 else ""
            placed.trigger.setdefault(name, []).append(text)
            ordered.append((-1, Placed(text, "trigger", _("Trigger"))))
            continue
        index = _card_index(parts, ids)
        if index is None:
            ordered.append((-2, Placed(text, "steps", _("Workflow"))))
            continue
        name = parts[2] if len(parts) > 2 else _exit_to(steps[index], detail)
        placed.cards.setdefault(index, {}).setdefault(name, []).append(text)
        label = STEP_LABELS.get(str(steps[index].get("type")), "")
        where_text = _("Step %(n)s", n=index + 1) + (f" · {_(label)}" if label else "")
        ordered.append((index, Placed(text, f"step-{ids[index]}", where_text)))
    placed.listed = [p for _i, p in sorted(ordered, key=lambda pair: pair[0])]
    return placed


_EXITS = ("next", "otherwise", "target", "on_invalid", "on_timeout", "on_failure")


def _exit_to(step: dict[str, Any], detail: dict[str, Any]) -> str:
    """The field of a step that goes to a missing step (the checks name only the step),
    so that the problem shows beside its select; "" when it is not such a problem."""
    found = _MISSING_TARGET.match(str(detail.get("message") or ""))
    if found is None:
        return ""
    target = found.group(1)
    if any(option.get("next") == target for option in step.get("options") or []):
        return "options"
    return next((name for name in _EXITS if step.get(name) == target), "")


def _card_index(parts: list[str], ids: list[str]) -> int | None:
    if parts[0] != "steps" or len(parts) < 2:
        return None
    if parts[1] in ids:
        return ids.index(parts[1])
    if parts[1].isdigit() and int(parts[1]) < len(ids):
        return int(parts[1])
    return None
