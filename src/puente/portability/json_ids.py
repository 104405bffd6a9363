"""Ids kept inside JSON columns (a workflow's steps, a segment's numbers, a timeline
entry's people), given their new values on import. Unknown ids become None (or drop out
of a list): they pointed at something the archive does not carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from puente.portability.kinds import USERS

# (table, old id) -> new id, or None.
Lookup = Callable[[str, Any], int | None]

# Workflow conditions that compare against an id.
_RULE_TABLES = {
    "conversation.assignee_id": USERS,
    "conversation.team_id": "teams",
    "channel.id": "channels",
    # A segment named by id (by name it needs nothing).
    "contact.segment": "segments",
}


def _ids(lookup: Lookup, name: str, values: Any) -> list[int]:
    if not isinstance(values, list):
        return []
    mapped = (lookup(name, v) for v in values)
    return [v for v in mapped if v is not None]


def _rule_value(lookup: Lookup, name: str, value: Any) -> Any:
    if isinstance(value, list):
        mapped = (_rule_value(lookup, name, v) for v in value)
        return [v for v in mapped if v is not None]
    if isinstance(value, int | str) and str(value).isdigit():
        return lookup(name, int(value))
    return value  # a name (a segment's), kept as it is


def _conditions(conditions: Any, lookup: Lookup) -> Any:
    if not isinstance(conditions, dict):
        return conditions
    rules = []
    for rule in conditions.get("rules") or []:
        name = _RULE_TABLES.get(str(rule.get("field"))) if isinstance(rule, dict) else None
        rules.append(
            {**rule, "value": _rule_value(lookup, name, rule.get("value"))} if name else rule
        )
    return {**conditions, "rules": rules}


def workflow_definition(value: Any, lookup: Lookup) -> Any:
    """A workflow's draft or a version's definition (automation.workflows.definition)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    trigger = out.get("trigger")
    if isinstance(trigger, dict):
        trigger = dict(trigger)
        if trigger.get("channel_ids"):
            trigger["channel_ids"] = _ids(lookup, "channels", trigger["channel_ids"])
        if trigger.get("broadcast_id") is not None:
            trigger["broadcast_id"] = None  # broadcasts are not carried
        if "conditions" in trigger:
            trigger["conditions"] = _conditions(trigger["conditions"], lookup)
        out["trigger"] = trigger
    steps = out.get("steps")
    if isinstance(steps, list):
        out["steps"] = [_step(step, lookup) for step in steps]
    return out


def _step(step: Any, lookup: Lookup) -> Any:
    if not isinstance(step, dict):
        return step
    step = dict(step)
    for key, name in (("agent_id", USERS), ("team_id", "teams"), ("workflow_id", "workflows")):
        if step.get(key) is not None:
            step[key] = lookup(name, step[key])
    for key in ("when", "conditions"):
        if key in step:
            step[key] = _conditions(step[key], lookup)
    return step


def segment_filter(value: Any, lookup: Lookup) -> Any:
    """A segment's filter names tags by name; only its numbers are ids."""
    if isinstance(value, dict) and value.get("channel_ids"):
        return {**value, "channel_ids": _ids(lookup, "channels", value["channel_ids"])}
    return value


def timeline_data(value: Any, lookup: Lookup) -> Any:
    """A conversation event's data: `…user_id` keys are people, `…team_id` keys teams."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key, item in value.items():
        if not isinstance(item, int) or isinstance(item, bool):
            continue
        if key.endswith("user_id"):
            out[key] = lookup(USERS, item)
        elif key.endswith("team_id"):
            out[key] = lookup("teams", item)
    return out


# table -> column -> remap
JSON_IDS: dict[str, dict[str, Callable[[Any, Lookup], Any]]] = {
    "workflows": {"draft": workflow_definition},
    "workflow_versions": {"definition": workflow_definition},
    "segments": {"filter": segment_filter},
    "conversation_events": {"data": timeline_data},
}
