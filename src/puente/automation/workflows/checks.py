"""Whether a workflow can run, checked at publish: each problem named by its place, so
the builder can show it beside the step. The same checks tell the builder which steps
point at something deleted since (an agent, a team, a template)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, Team
from puente.automation.workflows.context import SEGMENT_FIELD, SEGMENT_OPS, segment_refs
from puente.automation.workflows.definition import (
    CONDITION_FIELDS,
    WAITING_STEPS,
    Conditions,
    Definition,
    Step,
)
from puente.automation.workflows.models import Workflow
from puente.contacts.segments import find_segments
from puente.outbound.models import MessageTemplate

MAX_BUTTONS = 3


@dataclass(frozen=True)
class PublishProblem:
    where: str  # "trigger", "steps.<id>", "steps.<id>.<field>"
    message: str

    def as_detail(self) -> dict[str, str]:
        return {"field": self.where, "message": self.message}


def problems(session: Session, workspace_id: int, definition: Definition) -> list[PublishProblem]:
    found: list[PublishProblem] = []
    found += _trigger_problems(definition)
    if not definition.steps:
        found.append(PublishProblem("steps", "The workflow has no steps."))
        return found
    ids = [step.id for step in definition.steps]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        found.append(PublishProblem(f"steps.{duplicate}", f"Two steps are called “{duplicate}”."))
    known = set(ids)
    if definition.start and definition.start not in known:
        found.append(
            PublishProblem("start", f"The first step “{definition.start}” does not exist.")
        )
    for step in definition.steps:
        where = f"steps.{step.id}"
        for target in step.exits():
            if target not in known:
                found.append(PublishProblem(where, f"It goes to “{target}”, which is not a step."))
        found += _step_problems(session, workspace_id, step, where)
        for conditions, place in ((step.when, "when"), (step.conditions, "conditions")):
            found += _condition_problems(conditions, f"{where}.{place}")
            found += _segment_problems(session, workspace_id, conditions, f"{where}.{place}")
    found += _condition_problems(definition.trigger.conditions, "trigger.conditions")
    found += _segment_problems(
        session, workspace_id, definition.trigger.conditions, "trigger.conditions"
    )
    found += _loop_problems(definition)
    return found


def _trigger_problems(definition: Definition) -> list[PublishProblem]:
    trigger = definition.trigger
    found = []
    keywords = [k for k in trigger.keywords if k.strip()]
    if trigger.type == "message_received" and trigger.match == "keyword" and not keywords:
        found.append(PublishProblem("trigger.keywords", "Give at least one keyword or phrase."))
    if trigger.type == "tag_added" and not (trigger.tag or "").strip():
        found.append(PublishProblem("trigger.tag", "Choose the tag that starts the workflow."))
    if trigger.type == "field_changed" and not (trigger.field or "").strip():
        found.append(PublishProblem("trigger.field", "Choose the contact field to watch."))
    if trigger.type == "no_reply" and not trigger.minutes:
        found.append(
            PublishProblem("trigger.minutes", "Say after how many minutes without a reply.")
        )
    return found


def _step_problems(
    session: Session, workspace_id: int, step: Step, where: str
) -> list[PublishProblem]:
    found: list[PublishProblem] = []

    def need(condition: bool, field: str, message: str) -> None:
        if not condition:
            found.append(PublishProblem(f"{where}.{field}", message))

    kind = step.type
    if kind in ("send_message", "note", "question"):
        need(bool(step.text.strip()), "text", "Write the text to send.")
    if kind == "send_template" or (kind == "send_message" and step.template is not None):
        need(step.template is not None, "template", "Choose a template.")
        if step.template is not None:
            state = _template_state(
                session, workspace_id, step.template.name, step.template.language
            )
            need(
                state == "APPROVED",
                "template",
                f"The template “{step.template.name}” ({step.template.language}) "
                + ("does not exist." if state is None else f"is not approved ({state.lower()})."),
            )
    if kind == "question":
        need(bool(step.options), "options", "Give the customer at least one option.")
        titles = [o.title.strip().casefold() for o in step.options]
        need(len(set(titles)) == len(titles), "options", "Two options have the same text.")
        option_ids = [o.id for o in step.options]
        need(len(set(option_ids)) == len(option_ids), "options", "Two options have the same id.")
        if len(step.options) > MAX_BUTTONS:
            need(bool(step.list_button.strip()), "list_button", "A list needs its button's text.")
        need(
            step.on_timeout is None or step.timeout_minutes is not None,
            "timeout_minutes",
            "Say after how many minutes without an answer.",
        )
    if kind == "assign":
        need(
            step.agent_id is not None or step.team_id is not None,
            "agent_id",
            "Choose an agent or a team.",
        )
        if step.agent_id is not None:
            need(
                _is_member(session, workspace_id, step.agent_id),
                "agent_id",
                "The agent is no longer a member of this workspace.",
            )
        if step.team_id is not None:
            need(
                _team_exists(session, workspace_id, step.team_id),
                "team_id",
                "The team was deleted.",
            )
    if kind in ("add_tag", "remove_tag"):
        need(bool((step.tag or "").strip()), "tag", "Choose a tag.")
    if kind == "set_field":
        need(bool((step.field or "").strip()), "field", "Choose the contact field to set.")
    if kind == "snooze":
        need(step.minutes is not None, "minutes", "Say for how many minutes.")
    if kind == "wait":
        need(
            [step.minutes, step.seconds, step.until].count(None) == 2,
            "minutes",
            "Wait either a number of minutes, of seconds, or until a time of day.",
        )
    if kind == "branch":
        need(
            step.conditions is not None and bool(step.conditions.rules),
            "conditions",
            "Give the conditions to branch on.",
        )
    if kind == "jump":
        need(bool(step.target), "target", "Choose the step to go to.")
    if kind == "http":
        need(step.url.startswith(("http://", "https://")), "url", "Give an http(s) address.")
    if kind == "start_workflow":
        need(step.workflow_id is not None, "workflow_id", "Choose the workflow to start.")
        if step.workflow_id is not None:
            exists = session.scalar(
                select(Workflow.id).where(
                    Workflow.id == step.workflow_id, Workflow.workspace_id == workspace_id
                )
            )
            need(exists is not None, "workflow_id", "That workflow was deleted.")
    return found


def _condition_problems(conditions: Conditions | None, where: str) -> list[PublishProblem]:
    if conditions is None:
        return []
    found = []
    for index, rule in enumerate(conditions.rules):
        known = any(
            rule.field == f
            or (f.endswith(".") and rule.field.startswith(f) and len(rule.field) > len(f))
            for f in CONDITION_FIELDS
        )
        if not known:
            found.append(PublishProblem(f"{where}.rules.{index}", f"Unknown field “{rule.field}”."))
    return found


def _segment_problems(
    session: Session, workspace_id: int, conditions: Conditions | None, where: str
) -> list[PublishProblem]:
    """A `contact.segment` rule names segments that exist, with an operator it knows."""
    found: list[PublishProblem] = []
    for index, rule in enumerate(conditions.rules if conditions else []):
        if rule.field.strip().lower() != SEGMENT_FIELD:
            continue
        place = f"{where}.rules.{index}"
        if rule.op not in SEGMENT_OPS:
            found.append(PublishProblem(place, "A segment is checked with eq, ne, in or not_in."))
            continue
        refs = segment_refs(rule.value)
        _segments, missing = find_segments(session, workspace_id, refs)
        if not [r for r in refs if str(r).strip()]:
            found.append(PublishProblem(place, "Choose a segment (its name or id)."))
        for ref in missing:
            found.append(PublishProblem(place, f"There is no segment “{ref}”."))
    return found


def _loop_problems(definition: Definition) -> list[PublishProblem]:
    """A cycle of steps none of which waits would run until the step budget stops it:
    refused. Found with a depth-first search over the steps that do not wait."""
    by_id = {step.id: step for step in definition.steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[PublishProblem] = []

    def visit(step_id: str) -> None:
        state[step_id] = 1
        step = by_id[step_id]
        for target in step.exits():
            if target not in by_id or by_id[target].type in WAITING_STEPS:
                continue
            if state.get(target) == 1:
                found.append(
                    PublishProblem(
                        f"steps.{target}",
                        f"Steps loop back to “{target}” without a wait or a question.",
                    )
                )
            elif target not in state:
                visit(target)
        state[step_id] = 2

    for step in definition.steps:
        if step.id not in state and step.type not in WAITING_STEPS:
            visit(step.id)
    return found


def _template_state(session: Session, workspace_id: int, name: str, language: str) -> str | None:
    statuses = session.scalars(
        select(MessageTemplate.status).where(
            MessageTemplate.workspace_id == workspace_id,
            MessageTemplate.name == name,
            MessageTemplate.language == language,
        )
    ).all()
    if not statuses:
        return None
    return "APPROVED" if "APPROVED" in statuses else str(statuses[0])


def _is_member(session: Session, workspace_id: int, user_id: int) -> bool:
    return (
        session.scalar(
            select(Membership.user_id).where(
                Membership.workspace_id == workspace_id, Membership.user_id == user_id
            )
        )
        is not None
    )


def _team_exists(session: Session, workspace_id: int, team_id: int) -> bool:
    return (
        session.scalar(select(Team.id).where(Team.workspace_id == workspace_id, Team.id == team_id))
        is not None
    )
