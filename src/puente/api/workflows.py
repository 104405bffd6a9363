"""REST API for workflows: create and edit a draft, publish it, switch it on and off,
export and import it as a file, start a run (the "incoming API call" trigger), and follow
the runs (thin: the rules live in `puente.automation.workflows.service`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from puente.api.common import MAX_PAGE_SIZE, error_responses, invalid_field
from puente.api.deps import ApiCaller, SessionDep, scoped
from puente.automation.workflows import service as wf
from puente.automation.workflows.definition import Definition
from puente.automation.workflows.models import (
    ACTIVE,
    RunStatus,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    english,
)
from puente.contacts.models import Contact
from puente.contacts.phones import to_e164, wa_id_from_e164
from puente.errors import Conflict
from puente.outbound.outbox.service import resolve_recipient

router = APIRouter(tags=["workflows"])

ReadCaller = Annotated[ApiCaller, scoped("automation:read")]
WriteCaller = Annotated[ApiCaller, scoped("automation:write")]
WorkflowId = Annotated[int, Path(ge=1, le=2**62, description="the workflow's id")]
RunId = Annotated[int, Path(ge=1, le=2**62, description="the run's id")]
StatusName = Literal["ready", "waiting", "asking", "done", "failed", "stopped"]

# Workflows whose trigger is a person or a program: these may be started by this API.
STARTABLE = frozenset({"api", "manual"})
API_KEY_PREFIX = "api:"


# -- shapes ------------------------------------------------------------------------------------


class WorkflowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description=f"at most {wf.MAX_NAME} characters")
    description: str = Field(default="", max_length=500)
    definition: Definition = Field(
        description="the trigger and the steps (format version 1); saved as the draft, "
        "checked only when published"
    )


class WorkflowOut(BaseModel):
    id: int
    name: str
    description: str
    enabled: bool = Field(description="its trigger starts runs (it needs a published version)")
    trigger_type: str | None = Field(description="the published version's trigger")
    published_version: int | None = Field(description="the published version's number")
    draft_changed: bool = Field(description="the draft differs from the published version")
    template_key: str | None = Field(description="the ready-made workflow it came from")
    active_runs: int = Field(description="runs not yet over (ready, waiting, asking)")
    failed_runs: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: wf.WorkflowView) -> WorkflowOut:
        w = view.workflow
        return cls(
            id=w.id,
            name=w.name,
            description=w.description,
            enabled=w.enabled,
            trigger_type=w.trigger_type,
            published_version=view.version_number,
            draft_changed=view.draft_changed,
            template_key=w.template_key,
            active_runs=view.active_runs,
            failed_runs=view.failed_runs,
            created_at=w.created_at,
            updated_at=w.updated_at,
        )


class WorkflowDetail(WorkflowOut):
    definition: dict[str, Any] = Field(
        description="the draft, as WorkflowIn's definition, without the fields left at "
        "their defaults"
    )
    published_definition: dict[str, Any] | None = Field(
        description="the published version's definition, the one new runs start on"
    )


class WorkflowList(BaseModel):
    items: list[WorkflowOut]


class WorkflowFile(BaseModel):
    """A workflow as a file: what export gives and import takes."""

    format: Literal["puente.workflow"] = "puente.workflow"
    version: Literal[1] = Field(description="the definition's format version")
    name: str
    description: str
    definition: dict[str, Any]


VarName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
VarValue = Annotated[str, StringConstraints(max_length=1024)] | int | FiniteFloat | bool | None


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: int | None = Field(
        default=None, ge=1, le=2**62, description="the contact the run is about"
    )
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="or the contact's phone number (E.164); a number Puente does not know "
        "yet becomes a contact, and then needs channel_id",
        examples=["+5215512345678"],
    )
    channel_id: int | None = Field(
        default=None,
        ge=1,
        le=2**62,
        description="the number the run writes from (default: the one the contact last "
        "talked to, or the workspace's only number)",
    )
    variables: dict[VarName, VarValue] = Field(
        default_factory=dict,
        max_length=50,
        description="values the steps can use as {vars.<name>}",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="a second call with the same key returns the first run and starts none",
    )


class RunStepOut(BaseModel):
    step_id: str
    step_type: str
    outcome: str = Field(description="ok, failed, waiting or skipped")
    detail: str
    message_id: int | None = Field(description="the message the step sent, if any")
    at: dt.datetime

    @classmethod
    def of(cls, step: WorkflowRunStep) -> RunStepOut:
        return cls(
            step_id=step.step_id,
            step_type=step.step_type,
            outcome=step.outcome,
            detail=english(step.detail, step.detail_params),
            message_id=step.message_id,
            at=step.at,
        )


class RunOut(BaseModel):
    id: int
    workflow_id: int
    version_id: int = Field(description="the version it runs on, to the end")
    contact_id: int | None
    conversation_id: int | None
    trigger: str = Field(description="what started it: api, manual, test or the trigger type")
    status: StatusName
    step_id: str | None = Field(description="the step it takes next")
    steps_taken: int
    variables: dict[str, Any] = Field(
        description="what the run knows: vars (given when it started), answers, HTTP results"
    )
    wake_at: dt.datetime | None = Field(description="when a waiting run goes on")
    error: str | None = Field(description="why it failed or stopped")
    test: bool = Field(description="a test run from the builder")
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, run: WorkflowRun) -> RunOut:
        return cls(
            id=run.id,
            workflow_id=run.workflow_id,
            version_id=run.version_id,
            contact_id=run.contact_id,
            conversation_id=run.conversation_id,
            trigger=run.trigger,
            status=cast(StatusName, run.status),
            step_id=run.step_id,
            steps_taken=run.steps_taken,
            variables=run.variables or {},
            wake_at=run.wake_at,
            error=english(run.error, run.error_params) or None,
            test=run.test,
            created_at=run.created_at,
            finished_at=run.finished_at,
        )


class RunDetail(RunOut):
    steps: list[RunStepOut] = Field(description="each step taken, in order")


class RunList(BaseModel):
    items: list[RunOut]


# -- reading helpers -------------------------------------------------------------------------


def _view(session: Session, workflow: Workflow) -> wf.WorkflowView:
    counts: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(WorkflowRun.status, func.count())
            .where(WorkflowRun.workflow_id == workflow.id, WorkflowRun.test.is_(False))
            .group_by(WorkflowRun.status)
        ).tuples()
    }
    version = wf.published_version(session, workflow)
    return wf.WorkflowView(
        workflow=workflow,
        version_number=version.number if version else None,
        active_runs=sum(counts.get(s, 0) for s in ACTIVE),
        failed_runs=counts.get(RunStatus.FAILED.value, 0),
        draft_changed=version is None or version.definition != workflow.draft,
    )


def _detail(session: Session, workflow: Workflow) -> WorkflowDetail:
    session.flush()
    published = wf.published_definition(session, workflow)
    return WorkflowDetail(
        **WorkflowOut.of(_view(session, workflow)).model_dump(),
        definition=workflow.draft,
        published_definition=published.dump() if published else None,
    )


def _run_detail(session: Session, run: WorkflowRun) -> RunDetail:
    steps = wf.steps_of(session, [run.id])[run.id]
    return RunDetail(**RunOut.of(run).model_dump(), steps=[RunStepOut.of(s) for s in steps])


# -- workflows -------------------------------------------------------------------------------


@router.get(
    "/workflows",
    response_model=WorkflowList,
    summary="List the workspace's workflows, by name",
    responses=error_responses(403),
)
def list_workflows(caller: ReadCaller, session: SessionDep) -> WorkflowList:
    views = wf.list_workflows(session, caller.workspace_id)
    return WorkflowList(items=[WorkflowOut.of(v) for v in views])


@router.post(
    "/workflows",
    response_model=WorkflowDetail,
    status_code=201,
    summary="Create a workflow (its definition is the draft; publish it to use it)",
    responses=error_responses(403),
)
def create_workflow(body: WorkflowIn, caller: WriteCaller, session: SessionDep) -> WorkflowDetail:
    workflow = wf.do_create_workflow(
        session,
        caller.workspace_id,
        name=body.name,
        description=body.description,
        definition=body.definition,
        actor=caller.actor,
    )
    return _detail(session, workflow)


@router.post(
    "/workflows/import",
    response_model=WorkflowDetail,
    status_code=201,
    summary="Create a workflow from an exported file, as a draft",
    description="The body is the document `GET /workflows/{id}/export` gives. A field "
    "Puente does not know, or another format version, is refused with 422 naming it. "
    "Publish the draft here to check its agents, teams and templates against this workspace.",
    responses=error_responses(403),
)
def import_workflow(
    caller: WriteCaller,
    session: SessionDep,
    document: Annotated[
        Any,
        Body(
            description="a workflow file (format puente.workflow, version 1)",
            examples=[
                {
                    "format": "puente.workflow",
                    "version": 1,
                    "name": "Out-of-hours reply",
                    "description": "",
                    "definition": {
                        "version": 1,
                        "trigger": {"type": "outside_hours"},
                        "steps": [{"id": "reply", "type": "send_message", "text": "Hola"}],
                    },
                }
            ],
        ),
    ],
) -> WorkflowDetail:
    workflow = wf.do_import_workflow(session, caller.workspace_id, document, caller.actor)
    return _detail(session, workflow)


@router.get(
    "/workflows/{workflow_id}",
    response_model=WorkflowDetail,
    summary="A workflow with its draft and its published definition",
    responses=error_responses(403, 404),
)
def get_workflow(
    workflow_id: WorkflowId, caller: ReadCaller, session: SessionDep
) -> WorkflowDetail:
    return _detail(session, wf.access_workflow(session, caller.workspace_id, workflow_id))


@router.put(
    "/workflows/{workflow_id}",
    response_model=WorkflowDetail,
    summary="Replace a workflow's name, description and draft",
    description="The published version, and every run on it, stay as they are until the "
    "draft is published.",
    responses=error_responses(403, 404),
)
def put_workflow(
    workflow_id: WorkflowId, body: WorkflowIn, caller: WriteCaller, session: SessionDep
) -> WorkflowDetail:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    wf.do_save_draft(
        session,
        workflow,
        definition=body.definition,
        name=body.name,
        description=body.description,
        actor=caller.actor,
    )
    return _detail(session, workflow)


@router.delete(
    "/workflows/{workflow_id}",
    status_code=204,
    summary="Delete a workflow, its versions and its runs",
    responses=error_responses(403, 404),
)
def delete_workflow(workflow_id: WorkflowId, caller: WriteCaller, session: SessionDep) -> Response:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    wf.do_delete_workflow(session, workflow, caller.actor)
    return Response(status_code=204)


@router.post(
    "/workflows/{workflow_id}/publish",
    response_model=WorkflowDetail,
    summary="Publish the draft as the next version",
    description="Refused with 422 (code workflow_invalid) when the draft cannot run; "
    "`details` names every problem by its place (`steps.<id>.<field>`). Runs already going "
    "finish on their own version.",
    responses=error_responses(403, 404),
)
def publish_workflow(
    workflow_id: WorkflowId, caller: WriteCaller, session: SessionDep
) -> WorkflowDetail:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    wf.do_publish(session, workflow, caller.actor)
    return _detail(session, workflow)


@router.post(
    "/workflows/{workflow_id}/enable",
    response_model=WorkflowDetail,
    summary="Switch a workflow on (it needs a published version: 409 otherwise)",
    responses=error_responses(403, 404, 409),
)
def enable_workflow(
    workflow_id: WorkflowId, caller: WriteCaller, session: SessionDep
) -> WorkflowDetail:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    wf.do_set_enabled(session, workflow, True, caller.actor)
    return _detail(session, workflow)


@router.post(
    "/workflows/{workflow_id}/disable",
    response_model=WorkflowDetail,
    summary="Switch a workflow off; its runs still going are stopped",
    responses=error_responses(403, 404),
)
def disable_workflow(
    workflow_id: WorkflowId, caller: WriteCaller, session: SessionDep
) -> WorkflowDetail:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    wf.do_set_enabled(session, workflow, False, caller.actor)
    return _detail(session, workflow)


@router.get(
    "/workflows/{workflow_id}/export",
    response_model=WorkflowFile,
    summary="A workflow as a file, for POST /workflows/import here or elsewhere",
    responses=error_responses(403, 404, 409),
)
def export_workflow(
    workflow_id: WorkflowId,
    caller: ReadCaller,
    session: SessionDep,
    published: Annotated[
        bool, Query(description="the published version instead of the draft (409 if none)")
    ] = False,
) -> WorkflowFile:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    return WorkflowFile.model_validate(wf.export_workflow(session, workflow, published=published))


# -- runs ------------------------------------------------------------------------------------


@router.get(
    "/workflows/{workflow_id}/runs",
    response_model=RunList,
    summary="A workflow's runs, newest first (test runs included, marked)",
    responses=error_responses(403, 404),
)
def list_runs(
    workflow_id: WorkflowId,
    caller: ReadCaller,
    session: SessionDep,
    status: Annotated[StatusName | None, Query(description="only runs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> RunList:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    runs = wf.runs_of(
        session, caller.workspace_id, workflow_id=workflow.id, status=status, limit=limit
    )
    return RunList(items=[RunOut.of(r) for r in runs])


@router.post(
    "/workflows/{workflow_id}/runs",
    response_model=RunOut,
    status_code=201,
    summary="Start a run for a contact (a workflow whose trigger is api or manual)",
    description="The run is queued (status ready) and the workflow worker takes it up. "
    "With an `idempotency_key` seen before for this workflow, the first run is returned "
    "(200) and no other starts. Refusals: a workflow switched off → 409 workflow_off; one "
    "started by another trigger → 409 wrong_trigger; an unknown contact → 404.",
    responses={
        200: {"model": RunOut, "description": "The run this idempotency key already started"},
        **error_responses(403, 404, 409),
    },
)
def start_run(
    workflow_id: WorkflowId,
    body: RunIn,
    caller: WriteCaller,
    session: SessionDep,
    response: Response,
) -> RunOut:
    workflow = wf.access_workflow(session, caller.workspace_id, workflow_id)
    key = API_KEY_PREFIX + body.idempotency_key if body.idempotency_key else None
    if key is not None:
        first = _run_with_key(session, workflow, key)
        if first is not None:
            response.status_code = 200
            return RunOut.of(first)
    _check_startable(workflow)
    recipient = resolve_recipient(
        session,
        workspace_id=caller.workspace_id,
        channel_id=body.channel_id,
        **_who(session, caller.workspace_id, body),
    )
    try:
        run = wf.do_start_manual_run(
            session,
            workflow,
            contact=recipient.contact,
            conversation=recipient.conversation,
            variables=body.variables,
            actor=caller.actor,
            key=key,
        )
    except Conflict as exc:
        # The same key in a request running at the same time: its run is the first.
        first = _run_with_key(session, workflow, key) if key else None
        if exc.code != "duplicate_run" or first is None:
            raise
        response.status_code = 200
        return RunOut.of(first)
    return RunOut.of(run)


def _check_startable(workflow: Workflow) -> None:
    if not workflow.enabled:
        raise Conflict("Switch the workflow on before starting it.", code="workflow_off")
    if workflow.trigger_type not in STARTABLE:
        raise Conflict(
            "This workflow starts by its own trigger (%(trigger)s); only a workflow "
            "whose trigger is an API call or a person can be started here.",
            params={"trigger": workflow.trigger_type},
            code="wrong_trigger",
        )


def _who(session: Session, workspace_id: int, body: RunIn) -> dict[str, Any]:
    """resolve_recipient's contact_id or to: a phone the workspace already knows is its
    contact (so no channel is needed); an unknown one becomes a contact on channel_id."""
    if (body.contact_id is None) == (body.phone is None):
        raise invalid_field("contact_id", "give exactly one of contact_id and phone")
    if body.contact_id is not None:
        return {"contact_id": body.contact_id}
    assert body.phone is not None
    e164 = to_e164(body.phone)
    if e164 is None:
        raise invalid_field("phone", "not a phone number (use E.164, e.g. +5215512345678)")
    # WhatsApp ids keep forms the numbering plan dropped (Mexico's 521...), so the digits
    # as written are looked for too.
    wa_ids = {wa_id_from_e164(e164), "".join(ch for ch in body.phone if ch.isdigit())}
    known = session.scalar(
        select(Contact.id)
        .where(
            Contact.workspace_id == workspace_id,
            or_(Contact.phone_e164 == e164, Contact.wa_id.in_(wa_ids)),
        )
        .order_by(Contact.id)
        .limit(1)
    )
    return {"contact_id": known} if known is not None else {"to": e164}


def _run_with_key(session: Session, workflow: Workflow, key: str) -> WorkflowRun | None:
    return session.scalar(
        select(WorkflowRun).where(
            WorkflowRun.workflow_id == workflow.id, WorkflowRun.trigger_key == key
        )
    )


@router.get(
    "/workflow-runs/{run_id}",
    response_model=RunDetail,
    summary="A run with each step it took",
    responses=error_responses(403, 404),
)
def get_run(run_id: RunId, caller: ReadCaller, session: SessionDep) -> RunDetail:
    return _run_detail(session, wf.access_run(session, caller.workspace_id, run_id))


@router.post(
    "/workflow-runs/{run_id}/retry",
    response_model=RunDetail,
    summary="Take a failed run up again at the step that failed",
    description="After a fix (the template approved, the endpoint back). The run keeps its "
    "version. Only a failed run: 409 not_failed otherwise.",
    responses=error_responses(403, 404, 409),
)
def retry_run(run_id: RunId, caller: WriteCaller, session: SessionDep) -> RunDetail:
    run = wf.access_run(session, caller.workspace_id, run_id)
    return _run_detail(session, wf.do_retry_run(session, run, caller.actor))
