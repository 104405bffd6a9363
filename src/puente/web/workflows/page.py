"""The builder's page as the routes show it: the draft (or a form sent back with its
problems), the choices of its selects, each problem beside its place, and the test
run's contacts."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from puente.automation.workflows import service
from puente.automation.workflows.checks import problems as draft_problems
from puente.automation.workflows.definition import (
    CONDITION_FIELDS,
    OPERATORS,
    STEP_TYPES,
    TRIGGER_TYPES,
    parse_definition,
)
from puente.automation.workflows.models import Workflow
from puente.errors import InvalidInput, NotFound
from puente.web.deps import WebContext
from puente.web.i18n import N_
from puente.web.templating import render, translate
from puente.web.workflows import choices, form, words
from puente.web.workflows.problems import place

FLASHES = {
    "created": N_("Workflow created. Choose its trigger and add its steps."),
    "imported": N_("Workflow imported as a draft: check it and publish it."),
    "installed": N_("Ready-made workflow installed as a draft: adjust it and publish it."),
    "saved": N_("Draft saved."),
    "published": N_("Published: new runs use this version."),
    "enabled": N_("The workflow is on."),
    "disabled": N_("The workflow is off; its runs in progress were stopped."),
    "deleted": N_("Workflow deleted."),
    "retried": N_("The run starts again at the step that failed."),
}


def tr(request: Request) -> words.Translate:
    return partial(translate, request)


def flash(request: Request) -> str | None:
    message = FLASHES.get(request.query_params.get("flash", ""))
    return translate(request, message) if message else None


def labels() -> dict[str, Any]:
    """The names the builder's selects show, and which fields each type uses."""
    return {
        "trigger_labels": words.TRIGGER_LABELS,
        "step_labels": words.STEP_LABELS,
        "operator_labels": words.OPERATOR_LABELS,
        "trigger_types": TRIGGER_TYPES,
        "step_types": STEP_TYPES,
        "operators": OPERATORS,
        "condition_fields": CONDITION_FIELDS,
        "uses": {f: form.types_using(f) for t in STEP_TYPES for f in form.STEP_FIELDS[t]},
        "trigger_uses": {
            f: form.trigger_types_using(f)
            for fields in form.TRIGGER_FIELDS.values()
            for f in fields
        },
    }


def view_of(session: Session, workflow: Workflow) -> service.WorkflowView:
    for view in service.list_workflows(session, workflow.workspace_id):
        if view.workflow.id == workflow.id:
            return view
    raise NotFound("There is no such workflow in this workspace.")


def _saved_problems(session: Session, workflow: Workflow) -> list[dict[str, Any]]:
    """What would stop a published workflow's draft being published again (an agent, a
    team or a template deleted since, say), shown as soon as the builder opens."""
    if workflow.published_version_id is None:
        return []
    try:
        definition = parse_definition(workflow.draft)
    except InvalidInput as exc:
        return exc.details if isinstance(exc.details, list) else []
    return [p.as_detail() for p in draft_problems(session, workflow.workspace_id, definition)]


def show_builder(
    request: Request,
    session: Session,
    me: WebContext,
    workflow: Workflow,
    *,
    data: dict[str, Any] | None = None,
    details: list[dict[str, Any]] | None = None,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    """The builder showing `data` (the saved draft unless given) and its problems."""
    if data is None:
        data = dict(workflow.draft)
        if details is None:
            details = _saved_problems(session, workflow)
    editor = form.editor_data(data)
    query = request.query_params.get("contact_q", "")[:100]
    context = {
        "workflow": workflow,
        "name": workflow.name,
        "description": workflow.description,
        "view": view_of(session, workflow),
        "editor": editor,
        "choices": choices.builder_choices(session, workflow.workspace_id, workflow.id),
        "problems": place(tr(request), details or [], editor["steps"]),
        "contacts": choices.contacts_to_try(session, workflow.workspace_id, query),
        "contact_q": query,
        "flash": flash(request),
        **labels(),
        **extra,
    }
    return render(request, "workflows/builder.html", context, status_code=status_code)
