"""A workflow's runs: the list (failed ones first to look at, with their reasons), each
run's steps, a retry for a failed run, and the builder's test run on a contact."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.automation.workflows import service
from puente.automation.workflows.models import RunStatus, WorkflowRun
from puente.contacts.models import Contact
from puente.errors import InvalidInput, NotFound, PuenteError
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import error_message
from puente.web.templating import render, request_language
from puente.web.workflows import choices, words
from puente.web.workflows.page import flash, show_builder

router = APIRouter(include_in_schema=False)
Manager = Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))]

STATUSES = tuple(s.value for s in RunStatus)


def _contacts_of(session: Session, workspace_id: int, runs: list[WorkflowRun]) -> dict[int, str]:
    ids = {r.contact_id for r in runs if r.contact_id is not None}
    if not ids:
        return {}
    found = session.scalars(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.id.in_(ids))
    )
    return {c.id: c.display_name for c in found}


def _runs_context(session: Session, me: WebContext, runs: list[WorkflowRun]) -> dict[str, Any]:
    return {
        "runs": runs,
        "steps": service.steps_of(session, [r.id for r in runs]),
        "contact_names": _contacts_of(session, me.actor.workspace_id, runs),
        "run_states": words.RUN_STATES,
        "outcomes": words.STEP_OUTCOMES,
        "step_labels": words.STEP_LABELS,
    }


@router.get("/workflows/{workflow_id}/runs", response_class=HTMLResponse)
def runs_page(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    status = request.query_params.get("status") or None
    status = status if status in STATUSES else None
    runs = service.runs_of(session, me.actor.workspace_id, workflow_id=workflow.id, status=status)
    context = {
        "workflow": workflow,
        "status": status or "",
        "statuses": STATUSES,
        "flash": flash(request),
        **_runs_context(session, me, runs),
    }
    return render(request, "workflows/runs.html", context)


def _run_of(session: Session, me: WebContext, workflow_id: int, run_id: int) -> WorkflowRun:
    run = service.access_run(session, me.actor.workspace_id, run_id)
    if run.workflow_id != workflow_id:
        raise NotFound("There is no such workflow run in this workspace.", code="unknown_run")
    return run


@router.get("/workflows/{workflow_id}/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, workflow_id: int, run_id: int, session: DbDep, me: Manager
) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    run = _run_of(session, me, workflow.id, run_id)
    context = {
        "workflow": workflow,
        "run": run,
        "flash": flash(request),
        **_runs_context(session, me, [run]),
    }
    return render(request, "workflows/run.html", context)


@router.post("/workflows/{workflow_id}/runs/{run_id}/retry", response_class=HTMLResponse)
def retry(request: Request, workflow_id: int, run_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    run = _run_of(session, me, workflow.id, run_id)
    service.do_retry_run(session, run, me.actor)
    return RedirectResponse(
        f"/workflows/{workflow.id}/runs/{run.id}?flash=retried", status_code=303
    )


# -- the builder's test run --------------------------------------------------------------------


@router.get("/workflows/{workflow_id}/test-contacts", response_class=HTMLResponse)
def test_contacts(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    """The test run's contact options for a search (htmx swaps them into the select)."""
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    query = request.query_params.get("contact_q", "")[:100]
    contacts = choices.contacts_to_try(session, workflow.workspace_id, query)
    return render(request, "workflows/_contact_options.html", {"contacts": contacts})


@router.post("/workflows/{workflow_id}/test", response_class=HTMLResponse)
async def test_run(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    """Run the saved draft on a contact, in their latest conversation; the run's page
    follows its steps."""
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    posted = await request.form()
    contact_id = str(posted.get("contact_id") or "")
    try:
        if not contact_id.isdigit():
            raise InvalidInput("Choose the contact to try the workflow on.")
        contact = session.scalar(
            select(Contact).where(
                Contact.workspace_id == workflow.workspace_id, Contact.id == int(contact_id)
            )
        )
        if contact is None:
            raise InvalidInput("Choose the contact to try the workflow on.")
        conversation = choices.latest_conversation(session, workflow.workspace_id, contact.id)
        with session.begin_nested():
            run = service.do_start_manual_run(
                session,
                workflow,
                contact=contact,
                conversation=conversation,
                actor=me.actor,
                test=True,
            )
    except PuenteError as exc:
        details = exc.details if isinstance(exc.details, list) else None
        error = error_message(request_language(request), exc)
        return show_builder(
            request, session, me, workflow, details=details, status_code=exc.status_code,
            test_error=error,
        )  # fmt: skip
    return RedirectResponse(f"/workflows/{workflow.id}/runs/{run.id}", status_code=303)
