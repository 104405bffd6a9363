"""The workflow runs of a conversation as its timeline shows them: each run with its
workflow's name, the steps it took (titled as in the run's own version) and how it ended.
Three statements whatever the number of runs, and none for a conversation without any."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from puente.automation.workflows.models import (
    RunStatus,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowVersion,
)
from puente.conversations.models import Conversation
from puente.web.i18n import N_

# The newest runs of the period the timeline shows, and at most this many steps in all
# (a run looping through a wait may take hundreds; the runs page has them all).
RUNS_SHOWN = 20
STEPS_SHOWN = 400

# How a run began, after "started": the trigger types, and the ways a person or another
# run starts one.
TRIGGER_WORDS = {
    "message_received": N_("a message was received"),
    "conversation_opened": N_("the conversation was opened"),
    "conversation_closed": N_("the conversation was closed"),
    "tag_added": N_("a tag was added to the contact"),
    "field_changed": N_("a contact field changed"),
    "broadcast_reply": N_("a reply to a broadcast"),
    "no_reply": N_("nobody replied in time"),
    "outside_hours": N_("a message outside business hours"),
    "manual": N_("started by hand"),
    "api": N_("started through the API"),
    "test": N_("a test run"),
    "workflow": N_("started by another workflow"),
}

# A step's outcome: a sign and its word.
OUTCOMES = {
    "ok": ("✓", N_("Done")),
    "failed": ("✗", N_("Failed")),
    "waiting": ("⏳", N_("Waiting")),
    "skipped": ("↷", N_("Skipped")),
    "timeout": ("⏱", N_("No answer in time")),
    "invalid": ("?", N_("No valid answer")),
    "stopped": ("■", N_("Stopped")),
    "calling": ("☎", N_("Calling")),
}

# How a run stands, for the line that sums it up.
RUN_STATES = {
    RunStatus.READY.value: N_("Running"),
    RunStatus.WAITING.value: N_("Waiting"),
    RunStatus.ASKING.value: N_("Waiting for an answer"),
    RunStatus.DONE.value: N_("Done"),
    RunStatus.FAILED.value: N_("Failed"),
    RunStatus.STOPPED.value: N_("Stopped"),
}


@dataclass(frozen=True)
class StepLine:
    step: WorkflowRunStep
    title: str  # the builder's label, else the step's id

    @property
    def sign(self) -> str:
        return OUTCOMES.get(self.step.outcome, ("·", ""))[0]

    @property
    def outcome(self) -> str:
        """The outcome's msgid (or the raw outcome when Puente has no word for it)."""
        if self.step.step_type == "question" and self.step.outcome == "waiting":
            return N_("Asked")  # sent, the run waits for the answer
        return OUTCOMES.get(self.step.outcome, ("", self.step.outcome))[1]


@dataclass(frozen=True)
class RunLine:
    run: WorkflowRun
    workflow_name: str
    steps: list[StepLine]

    @property
    def started_by(self) -> str:
        return TRIGGER_WORDS.get(self.run.trigger, self.run.trigger)

    @property
    def state(self) -> str:
        return RUN_STATES.get(self.run.status, self.run.status)


def conversation_runs(
    session: Session,
    conversation: Conversation,
    *,
    since: dt.datetime | None = None,
    before: dt.datetime | None = None,
) -> list[RunLine]:
    """The runs started in the conversation within [since, before), oldest first."""
    query = (
        select(WorkflowRun, Workflow.name)
        .join(Workflow, Workflow.id == WorkflowRun.workflow_id)
        .where(
            WorkflowRun.conversation_id == conversation.id,
            WorkflowRun.workspace_id == conversation.workspace_id,
        )
        # A run's variables can be large (HTTP responses) and the timeline never shows them.
        .options(defer(WorkflowRun.variables, raiseload=True))
    )
    if since is not None:
        query = query.where(WorkflowRun.created_at >= since)
    if before is not None:
        query = query.where(WorkflowRun.created_at < before)
    newest = session.execute(query.order_by(WorkflowRun.id.desc()).limit(RUNS_SHOWN)).tuples()
    rows = list(reversed(newest.all()))
    if not rows:
        return []
    steps = _steps(session, [run.id for run, _name in rows])
    titles = _titles(session, {run.version_id for run, _name in rows}) if steps else {}
    return [
        RunLine(
            run=run,
            workflow_name=name,
            steps=[
                StepLine(step, titles.get((run.version_id, step.step_id)) or step.step_id)
                for step in steps.get(run.id, [])
            ],
        )
        for run, name in rows
    ]


def _steps(session: Session, run_ids: list[int]) -> dict[int, list[WorkflowRunStep]]:
    newest = session.scalars(
        select(WorkflowRunStep)
        .where(WorkflowRunStep.run_id.in_(run_ids))
        .order_by(WorkflowRunStep.id.desc())
        .limit(STEPS_SHOWN)
    ).all()
    found: dict[int, list[WorkflowRunStep]] = {}
    for step in reversed(newest):
        found.setdefault(step.run_id, []).append(step)
    return found


def _titles(session: Session, version_ids: set[int]) -> dict[tuple[int, str], str]:
    """(version, step id) -> the step's title, for the steps the builder gave one."""
    titles: dict[tuple[int, str], str] = {}
    for version_id, definition in session.execute(
        select(WorkflowVersion.id, WorkflowVersion.definition).where(
            WorkflowVersion.id.in_(version_ids)
        )
    ).tuples():
        for step in _listed_steps(definition):
            if step.get("title") and step.get("id"):
                titles[(version_id, str(step["id"]))] = str(step["title"])
    return titles


def _listed_steps(definition: Any) -> list[dict[str, Any]]:
    # Read leniently: a title is a nicety, never a reason for the timeline to fail.
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return [s for s in steps or [] if isinstance(s, dict)]
