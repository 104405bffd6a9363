"""Workflows as a supervisor handles them: create, edit the draft, publish a version,
switch on and off, import and export as JSON; and runs: start one (from a conversation,
the API or the builder's test), list them, retry a failed one.

Every function takes the session of a workspace-scoped unit of work; the route or the
command that calls it owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.automation.workflows.checks import problems
from puente.automation.workflows.definition import (
    FORMAT_VERSION,
    Definition,
    parse_definition,
)
from puente.automation.workflows.engine import N_, insert_run
from puente.automation.workflows.models import (
    ACTIVE,
    RunStatus,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowVersion,
)
from puente.automation.workflows.triggers import forget_after_commit
from puente.contacts.models import Contact
from puente.conversations.models import Conversation
from puente.db.base import utcnow
from puente.errors import Conflict, InvalidInput, NotFound
from puente.jobs import WORKFLOWS

FILE_FORMAT = "puente.workflow"
MAX_NAME = 120


class PublishRefused(InvalidInput):
    code = "workflow_invalid"


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowView:
    workflow: Workflow
    version_number: int | None
    active_runs: int
    failed_runs: int
    draft_changed: bool  # the draft differs from the published version


def access_workflow(session: Session, workspace_id: int, workflow_id: int) -> Workflow:
    workflow = session.scalar(
        select(Workflow).where(Workflow.id == workflow_id, Workflow.workspace_id == workspace_id)
    )
    if workflow is None:
        raise NotFound("There is no such workflow in this workspace.", code="unknown_workflow")
    return workflow


def published_definition(session: Session, workflow: Workflow) -> Definition | None:
    version = published_version(session, workflow)
    return parse_definition(version.definition) if version is not None else None


def published_version(session: Session, workflow: Workflow) -> WorkflowVersion | None:
    if workflow.published_version_id is None:
        return None
    return session.get(WorkflowVersion, workflow.published_version_id)


def draft_of(workflow: Workflow) -> Definition:
    return parse_definition(workflow.draft)


def list_workflows(session: Session, workspace_id: int) -> list[WorkflowView]:
    workflows = list(
        session.scalars(
            select(Workflow).where(Workflow.workspace_id == workspace_id).order_by(Workflow.name)
        )
    )
    counts: dict[tuple[int, str], int] = {}
    for workflow_id, status, count in session.execute(
        select(WorkflowRun.workflow_id, WorkflowRun.status, func.count())
        .where(WorkflowRun.workspace_id == workspace_id, WorkflowRun.test.is_(False))
        .group_by(WorkflowRun.workflow_id, WorkflowRun.status)
    ):
        counts[(workflow_id, status)] = count
    versions = {
        v.id: v
        for v in session.scalars(
            select(WorkflowVersion).where(
                WorkflowVersion.id.in_(
                    [w.published_version_id for w in workflows if w.published_version_id]
                )
            )
        )
    }
    views = []
    for w in workflows:
        version = versions.get(w.published_version_id) if w.published_version_id else None
        views.append(
            WorkflowView(
                workflow=w,
                version_number=version.number if version else None,
                active_runs=sum(counts.get((w.id, s), 0) for s in ACTIVE),
                failed_runs=counts.get((w.id, RunStatus.FAILED.value), 0),
                draft_changed=version is None or version.definition != w.draft,
            )
        )
    return views


def runs_of(
    session: Session,
    workspace_id: int,
    *,
    workflow_id: int | None = None,
    conversation_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[WorkflowRun]:
    stmt = select(WorkflowRun).where(WorkflowRun.workspace_id == workspace_id)
    if workflow_id is not None:
        stmt = stmt.where(WorkflowRun.workflow_id == workflow_id)
    if conversation_id is not None:
        stmt = stmt.where(WorkflowRun.conversation_id == conversation_id)
    if status is not None:
        stmt = stmt.where(WorkflowRun.status == status)
    return list(session.scalars(stmt.order_by(WorkflowRun.id.desc()).limit(limit)))


def access_run(session: Session, workspace_id: int, run_id: int) -> WorkflowRun:
    run = session.scalar(
        select(WorkflowRun).where(
            WorkflowRun.id == run_id, WorkflowRun.workspace_id == workspace_id
        )
    )
    if run is None:
        raise NotFound("There is no such workflow run in this workspace.", code="unknown_run")
    return run


def steps_of(session: Session, run_ids: list[int]) -> dict[int, list[WorkflowRunStep]]:
    found: dict[int, list[WorkflowRunStep]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    for step in session.scalars(
        select(WorkflowRunStep)
        .where(WorkflowRunStep.run_id.in_(run_ids))
        .order_by(WorkflowRunStep.id)
    ):
        found[step.run_id].append(step)
    return found


# -- editing ---------------------------------------------------------------------------------


def refuse_nul(**values: Any) -> None:
    """Text with the NUL character cannot be stored (PostgreSQL refuses it in text and
    JSON): a clear 422 naming the field, instead of a failed write."""
    for field, value in values.items():
        if _has_nul(value):
            raise InvalidInput(
                "Text cannot contain the NUL character.",
                details=[{"field": field, "message": "contains the NUL character"}],
            )


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput(
            "Give the workflow a name.", details=[{"field": "name", "message": "required"}]
        )
    if len(name) > MAX_NAME:
        raise InvalidInput(f"The name is too long (at most {MAX_NAME} characters).")
    return name


def do_create_workflow(
    session: Session,
    workspace_id: int,
    *,
    name: str,
    definition: Definition,
    description: str = "",
    actor: Any = None,
    template_key: str | None = None,
) -> Workflow:
    refuse_nul(name=name, description=description, definition=definition.dump())
    workflow = Workflow(
        workspace_id=workspace_id,
        name=_clean_name(name),
        description=description.strip()[:500],
        draft=definition.dump(),
        enabled=False,
        template_key=template_key,
    )
    session.add(workflow)
    session.flush()
    _audit(session, actor, workflow, Action.WORKFLOW_CREATED)
    return workflow


def do_save_draft(
    session: Session,
    workflow: Workflow,
    *,
    definition: Definition,
    name: str | None = None,
    description: str | None = None,
    actor: Any = None,
) -> Workflow:
    refuse_nul(name=name, description=description, definition=definition.dump())
    if name is not None:
        workflow.name = _clean_name(name)
    if description is not None:
        workflow.description = description.strip()[:500]
    workflow.draft = definition.dump()
    session.flush()
    _audit(session, actor, workflow, Action.WORKFLOW_SAVED)
    return workflow


def do_publish(session: Session, workflow: Workflow, actor: Any = None) -> WorkflowVersion:
    """Check the draft and publish it as the next version; runs already going keep their
    own version. Refused with every problem named when it cannot run."""
    definition = draft_of(workflow)
    found = problems(session, workflow.workspace_id, definition)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise PublishRefused(
            f"The workflow cannot be published: {first.where}: {first.message}{more}",
            details=[p.as_detail() for p in found],
        )
    number = (
        session.scalar(
            select(func.max(WorkflowVersion.number)).where(
                WorkflowVersion.workflow_id == workflow.id
            )
        )
        or 0
    ) + 1
    version = WorkflowVersion(
        workspace_id=workflow.workspace_id,
        workflow_id=workflow.id,
        number=number,
        definition=definition.dump(),
        published_by=getattr(actor, "user_id", None),
    )
    session.add(version)
    session.flush()
    workflow.published_version_id = version.id
    workflow.trigger_type = definition.trigger.type
    session.flush()
    forget_after_commit(session, workflow.workspace_id)
    _audit(session, actor, workflow, Action.WORKFLOW_PUBLISHED, version=number)
    return version


def do_set_enabled(session: Session, workflow: Workflow, enabled: bool, actor: Any = None) -> None:
    """Switch the workflow on (it needs a published version) or off. Off stops its runs
    that are still going: off means nothing more happens."""
    if enabled and workflow.published_version_id is None:
        raise Conflict("Publish the workflow before switching it on.", code="not_published")
    if workflow.enabled == enabled:
        return
    workflow.enabled = enabled
    forget_after_commit(session, workflow.workspace_id)
    if not enabled:
        session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.workflow_id == workflow.id, WorkflowRun.status.in_(ACTIVE))
            .values(
                status=RunStatus.STOPPED.value,
                error=N_("The workflow was switched off."),
                error_params=None,
                wake_at=None,
                finished_at=utcnow(),
            )
        )
    session.flush()
    _audit(
        session, actor, workflow, Action.WORKFLOW_ENABLED if enabled else Action.WORKFLOW_DISABLED
    )


def do_delete_workflow(session: Session, workflow: Workflow, actor: Any = None) -> None:
    _audit(session, actor, workflow, Action.WORKFLOW_DELETED, name=workflow.name)
    session.delete(workflow)
    session.flush()


# -- files -------------------------------------------------------------------------------------


def export_workflow(
    session: Session, workflow: Workflow, *, published: bool = False
) -> dict[str, Any]:
    """The workflow as a JSON document: its draft, or its published version."""
    definition = published_definition(session, workflow) if published else draft_of(workflow)
    if definition is None:
        raise Conflict("This workflow has no published version.", code="not_published")
    return {
        "format": FILE_FORMAT,
        "version": FORMAT_VERSION,
        "name": workflow.name,
        "description": workflow.description,
        "definition": definition.dump(),
    }


_FILE_KEYS = {"format", "version", "name", "description", "definition"}


def parse_workflow_file(data: Any) -> tuple[str, str, Definition]:
    """(name, description, definition) from an exported document, or a clear error."""
    if not isinstance(data, dict):
        raise InvalidInput("A workflow file is a JSON object.")
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise InvalidInput(
            f"Unknown field in the workflow file: {', '.join(unknown)}.",
            details=[{"field": key, "message": "unknown field"} for key in unknown],
        )
    if data.get("format") != FILE_FORMAT:
        raise InvalidInput(
            f"This is not a Puente workflow file (format should be “{FILE_FORMAT}”)."
        )
    if data.get("version") != FORMAT_VERSION:
        raise InvalidInput(
            f"This workflow file is version {data.get('version')!r}; "
            f"this Puente reads version {FORMAT_VERSION}."
        )
    name = data.get("name")
    if not isinstance(name, str):
        raise InvalidInput("The workflow file has no name.")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise InvalidInput("The description must be text.")
    return name, description, parse_definition(data.get("definition"))


def do_import_workflow(
    session: Session, workspace_id: int, data: Any, actor: Any = None
) -> Workflow:
    """A new workflow from an exported document, as a draft: it is checked and switched
    on by publishing it here, where its agents, teams and templates are this workspace's."""
    name, description, definition = parse_workflow_file(data)
    return do_create_workflow(
        session,
        workspace_id,
        name=name,
        description=description,
        definition=definition,
        actor=actor,
    )


# -- runs --------------------------------------------------------------------------------------


def do_start_run(
    session: Session,
    workflow: Workflow,
    *,
    trigger: str,
    trigger_key: str,
    contact_id: int | None,
    conversation_id: int | None,
    variables: dict[str, Any] | None = None,
    test: bool = False,
    version: WorkflowVersion | None = None,
    now: dt.datetime | None = None,
) -> WorkflowRun | None:
    """A run of the workflow's published version, ready now; None when this trigger
    already started one (`trigger_key` is unique per workflow: one inbound message
    starts each workflow once, however often Meta delivers it)."""
    refuse_nul(variables=variables, key=trigger_key)
    if version is None:
        version = published_version(session, workflow)
    if version is None:
        raise Conflict("Publish the workflow before running it.", code="not_published")
    return insert_run(
        session,
        workspace_id=workflow.workspace_id,
        workflow_id=workflow.id,
        version_id=version.id,
        definition=parse_definition(version.definition),
        trigger=trigger,
        key=trigger_key,
        contact_id=contact_id,
        conversation_id=conversation_id,
        variables={"vars": dict(variables or {})},
        now=now or utcnow(),
        test=test,
    )


def do_start_manual_run(
    session: Session,
    workflow: Workflow,
    *,
    contact: Contact,
    conversation: Conversation | None,
    variables: dict[str, Any] | None = None,
    actor: Any = None,
    test: bool = False,
    key: str | None = None,
) -> WorkflowRun:
    """A person (from a conversation or the builder) or the API starts a run. A test run
    uses the draft, published on the spot as a version of its own is not: it runs the
    draft's checked definition without making it the published one."""
    if not workflow.enabled and not test:
        raise Conflict("Switch the workflow on before starting it.", code="workflow_off")
    version = None
    if test:
        version = _test_version(session, workflow)
    trigger = "test" if test else ("api" if getattr(actor, "token", None) else "manual")
    run = do_start_run(
        session,
        workflow,
        trigger=trigger,
        trigger_key=key or f"{trigger}:{utcnow().isoformat()}:{contact.id}",
        contact_id=contact.id,
        conversation_id=conversation.id if conversation else None,
        variables=variables,
        test=test,
        version=version,
    )
    if run is None:
        raise Conflict("This run was already started.", code="duplicate_run")
    _audit(session, actor, workflow, Action.WORKFLOW_RUN_STARTED, run_id=run.id, test=test)
    return run


def _test_version(session: Session, workflow: Workflow) -> WorkflowVersion:
    """The draft as a version numbered below zero: kept for the test run's sake (runs
    point at versions), never the published one, never listed."""
    definition = draft_of(workflow)
    found = problems(session, workflow.workspace_id, definition)
    if found:
        raise PublishRefused(
            f"The draft cannot run: {found[0].where}: {found[0].message}",
            details=[p.as_detail() for p in found],
        )
    lowest = session.scalar(
        select(func.min(WorkflowVersion.number)).where(WorkflowVersion.workflow_id == workflow.id)
    )
    version = WorkflowVersion(
        workspace_id=workflow.workspace_id,
        workflow_id=workflow.id,
        number=min(lowest or 0, 0) - 1,
        definition=definition.dump(),
    )
    session.add(version)
    session.flush()
    return version


def do_retry_run(session: Session, run: WorkflowRun, actor: Any = None) -> WorkflowRun:
    """Take a failed run up again at the step that failed (after a fix: the template
    approved, the endpoint back). Its version is kept: a run finishes on its version."""
    if run.status != RunStatus.FAILED.value:
        raise Conflict("Only a failed run can be retried.", code="not_failed")
    run.status = RunStatus.READY.value
    run.error = None
    run.finished_at = None
    run.wake_at = utcnow()
    session.flush()
    workflow = session.get(Workflow, run.workflow_id)
    if workflow is not None:
        _audit(session, actor, workflow, Action.WORKFLOW_RUN_RETRIED, run_id=run.id)
    WORKFLOWS.wake_after_commit(session)
    return run


def _audit(session: Session, actor: Any, workflow: Workflow, action: str, **details: Any) -> None:
    if actor is None:
        return
    audit.record(
        session,
        workspace_id=workflow.workspace_id,
        actor=actor,
        action=action,
        target=f"workflow {workflow.id}",
        details=details or None,
    )
