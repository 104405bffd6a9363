"""Workflows' tables: a workflow with its draft, its published versions, the runs (one
row each, claimed by the workflow worker like every queue's rows) and what each run did.

A version never changes once published: a run keeps the version it started on, so an
edit never changes a run half-way.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db.base import (
    Base,
    BigIntPK,
    IdMixin,
    JSONType,
    TimestampMixin,
    WorkspaceOwned,
    utcnow,
)


class RunStatus(enum.StrEnum):
    READY = "ready"  # has a step to take now (or at wake_at)
    WAITING = "waiting"  # a wait step: wakes at wake_at
    ASKING = "asking"  # a question went out: the customer's answer (or wake_at) moves it
    DONE = "done"
    FAILED = "failed"  # a step could not be done; the reason is in `error`
    STOPPED = "stopped"  # someone of the team took over, or the workflow was switched off


ACTIVE = (RunStatus.READY.value, RunStatus.WAITING.value, RunStatus.ASKING.value)


def english(template: str | None, params: dict[str, Any] | None) -> str:
    """A run's reason or a step's detail as English text (the API, the command line)."""
    if not template:
        return ""
    if not params:
        return template
    try:
        return template % params
    except (KeyError, TypeError, ValueError):
        return template


class Workflow(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "workflows"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(500), default="")
    # What the builder edits; checked only when published.
    draft: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # No foreign key: versions are only ever deleted with their workflow, and a key in
    # each direction between the two tables would need one of them added after both.
    published_version_id: Mapped[int | None] = mapped_column(BigIntPK, nullable=True)
    # The published version's trigger type, so that an event finds its workflows with
    # one indexed look-up and without reading any definition.
    trigger_type: Mapped[str | None] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(default=False)
    # Which ready-made workflow it was installed from, if any.
    template_key: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_workflows_trigger", "workspace_id", "enabled", "trigger_type"),)


class WorkflowVersion(WorkspaceOwned, IdMixin, Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "number"),)

    workspace_id: Mapped[int] = mapped_column(BigIntPK)  # the workflow's (decision 0006)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    number: Mapped[int]
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class WorkflowRun(WorkspaceOwned, IdMixin, TimestampMixin, Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        # One event starts each workflow once, however often it is delivered.
        UniqueConstraint("workflow_id", "trigger_key"),
        # The worker's look-up: active runs whose time has come.
        Index("ix_workflow_runs_due", "status", "wake_at"),
        Index("ix_workflow_runs_conversation", "conversation_id", "status"),
    )

    workspace_id: Mapped[int] = mapped_column(BigIntPK)  # the workflow's (decision 0006)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_versions.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    trigger: Mapped[str] = mapped_column(String(32))
    trigger_key: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.READY.value)
    step_id: Mapped[str | None] = mapped_column(String(64))  # the step to take next
    # How many times the run entered a step: part of each send's key, and the budget.
    steps_taken: Mapped[int] = mapped_column(default=0)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    wake_at: Mapped[dt.datetime | None]
    # Why it stopped or failed: a catalogue message and its values (see `english`).
    error: Mapped[str | None] = mapped_column(Text)
    error_params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    test: Mapped[bool] = mapped_column(default=False)  # started from the builder
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkflowRunStep(WorkspaceOwned, IdMixin, Base):
    """One line of a run's timeline: a step taken, and what came of it."""

    __tablename__ = "workflow_run_steps"

    workspace_id: Mapped[int] = mapped_column(BigIntPK)  # the run's (decision 0006)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str] = mapped_column(String(64))
    step_type: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))  # "ok", "failed", "waiting", "skipped"
    # What came of it: a catalogue message and its values, so each reader sees it in
    # their language (the answer chosen, why it failed).
    detail: Mapped[str] = mapped_column(Text, default="")
    detail_params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
