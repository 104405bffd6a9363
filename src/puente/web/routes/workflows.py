"""The Workflows pages: the list (with the ready-made workflows to install and a JSON file
to import), and the builder of one workflow, whose whole form is saved as its draft and
published from there. For supervisors and admins (automation.manage).

The builder is one form: every button of its cards (add, delete or move a step, remove
an option or a condition) posts the whole form, which is read into a definition
(puente.web.workflows.form), changed as the button asks, and saved as the draft.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from puente.accounts.permissions import Perm
from puente.automation.workflows import library, service
from puente.automation.workflows.definition import (
    TRIGGER_TYPES,
    empty_definition,
    parse_definition,
)
from puente.automation.workflows.models import Workflow
from puente.errors import InvalidInput, PuenteError
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import error_message
from puente.web.routes import workflow_runs
from puente.web.templating import render, request_language, translate
from puente.web.workflows import form, words
from puente.web.workflows.page import flash, labels, show_builder, tr

router = APIRouter(include_in_schema=False)
router.include_router(workflow_runs.router)
Manager = Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))]

MAX_FILE = 1024 * 1024
# The builder posts a dozen fields a step, two dozen for a question. A form posted with
# its CSRF token in a field has been read by the CSRF check already, with Starlette's
# limit of 1,000 fields (some 80 steps); one with the token in a header is read here.
MAX_FIELDS = 20_000


# -- the list ----------------------------------------------------------------------------------


def _list_context(request: Request, session: Session, me: WebContext) -> dict[str, Any]:
    _ = tr(request)
    views = service.list_workflows(session, me.actor.workspace_id)
    return {
        "views": views,
        "triggers": {
            v.workflow.id: words.describe_trigger(_, v.workflow.draft.get("trigger") or {})
            for v in views
        },
        "library": library.LIBRARY,
        "flash": flash(request),
    }


@router.get("/workflows", response_class=HTMLResponse)
def workflows_page(request: Request, session: DbDep, me: Manager) -> Response:
    return render(request, "workflows/list.html", _list_context(request, session, me))


@router.get("/workflows/new", response_class=HTMLResponse)
def new_page(request: Request, me: Manager) -> Response:
    context = {"form": {"name": "", "description": "", "trigger": "message_received"}}
    return render(request, "workflows/new.html", {**context, **labels()})


@router.post("/workflows/new", response_class=HTMLResponse)
async def create(request: Request, session: DbDep, me: Manager) -> Response:
    posted = await request.form()
    values = {
        "name": str(posted.get("name") or ""),
        "description": str(posted.get("description") or ""),
        "trigger": str(posted.get("trigger") or "message_received"),
    }
    trigger = values["trigger"] if values["trigger"] in TRIGGER_TYPES else "message_received"
    try:
        with session.begin_nested():
            workflow = service.do_create_workflow(
                session,
                me.actor.workspace_id,
                name=values["name"],
                description=values["description"],
                definition=empty_definition(trigger),
                actor=me.actor,
            )
    except PuenteError as exc:
        context = {"form": values, "error": error_message(request_language(request), exc)}
        return render(request, "workflows/new.html", {**context, **labels()}, status_code=422)
    return RedirectResponse(f"/workflows/{workflow.id}?flash=created", status_code=303)


@router.post("/workflows/import", response_class=HTMLResponse)
async def import_file(request: Request, session: DbDep, me: Manager) -> Response:
    posted = await request.form()
    upload = posted.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("Choose a workflow file (.json) to import.")
        raw = await upload.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise InvalidInput("The file is larger than 1 MB.")
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput("The file is not JSON.") from None
        with session.begin_nested():
            workflow = service.do_import_workflow(session, me.actor.workspace_id, data, me.actor)
    except PuenteError as exc:
        _ = tr(request)
        details = exc.details if isinstance(exc.details, list) else []
        context = {
            **_list_context(request, session, me),
            "import_error": words.problem_text(_, exc.message),
            "import_details": [
                f"{d.get('field')}: {words.problem_text(_, str(d.get('message')))}"
                for d in details
                if isinstance(d, dict)
            ],
        }
        return render(request, "workflows/list.html", context, status_code=exc.status_code)
    return RedirectResponse(f"/workflows/{workflow.id}?flash=imported", status_code=303)


@router.post("/workflows/library/{key}", response_class=HTMLResponse)
def install(request: Request, key: str, session: DbDep, me: Manager) -> Response:
    item = library.library_workflow(key)
    language = request_language(request)
    workflow = library.do_install(
        session,
        me.actor.workspace_id,
        item.key,
        me.actor,
        language=language if language in library.LANGUAGES else library.DEFAULT_LANGUAGE,
        name=translate(request, item.name),
        description=translate(request, item.description),
    )
    return RedirectResponse(f"/workflows/{workflow.id}?flash=installed", status_code=303)


# -- one workflow ------------------------------------------------------------------------------


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
def builder_page(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    return show_builder(request, session, me, workflow)


async def _posted(request: Request) -> tuple[dict[str, Any], list[form.Problem], Any]:
    posted = await request.form(max_fields=MAX_FIELDS)
    data, problems = form.definition_data(posted)
    return data, problems, posted


def _save(
    session: Session,
    me: WebContext,
    workflow: Workflow,
    data: dict[str, Any],
    posted: Any,
) -> list[dict[str, Any]]:
    """Save the draft (with its name and description); the problems if it cannot be read."""
    try:
        with session.begin_nested():
            definition = parse_definition(data)
            service.do_save_draft(
                session,
                workflow,
                definition=definition,
                name=str(posted.get("name") or ""),
                description=str(posted.get("description") or ""),
                actor=me.actor,
            )
    except InvalidInput as exc:
        details = exc.details if isinstance(exc.details, list) else []
        return details or [{"field": "definition", "message": exc.message}]
    return []


@router.post("/workflows/{workflow_id}", response_class=HTMLResponse)
async def builder_save(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    data, problems, posted = await _posted(request)
    action = str(posted.get("action") or "save")
    focus = form.apply_action(data, action, str(posted.get("new_step_type") or ""))
    if not problems:
        problems = _save(session, me, workflow, data, posted)
    if problems:
        return show_builder(
            request, session, me, workflow, data=data, details=problems, status_code=422,
            not_saved=True, name=posted.get("name"), description=posted.get("description"),
        )  # fmt: skip
    anchor = f"#step-{focus}" if focus else ""
    saved = "?flash=saved" if action == "save" else ""
    return RedirectResponse(f"/workflows/{workflow.id}{saved}{anchor}", status_code=303)


@router.post("/workflows/{workflow_id}/publish", response_class=HTMLResponse)
async def publish(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    """Save the form as the draft, then publish it; refused, the page names each problem
    beside its step and field (the draft stays saved)."""
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    data, problems, posted = await _posted(request)
    if not problems:
        problems = _save(session, me, workflow, data, posted)
    if problems:
        return show_builder(
            request, session, me, workflow, data=data, details=problems, status_code=422,
            not_saved=True, name=posted.get("name"), description=posted.get("description"),
        )  # fmt: skip
    try:
        with session.begin_nested():
            service.do_publish(session, workflow, me.actor)
    except service.PublishRefused as exc:
        details = exc.details if isinstance(exc.details, list) else []
        return show_builder(
            request, session, me, workflow, details=details, status_code=422, refused=True
        )
    return RedirectResponse(f"/workflows/{workflow.id}?flash=published", status_code=303)


@router.post("/workflows/{workflow_id}/enabled", response_class=HTMLResponse)
async def set_enabled(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    posted = await request.form()
    enabled = posted.get("enabled") == "yes"
    back = str(posted.get("back") or "")
    back = (
        back if back in ("/workflows", f"/workflows/{workflow.id}") else f"/workflows/{workflow.id}"
    )
    try:
        with session.begin_nested():
            service.do_set_enabled(session, workflow, enabled, me.actor)
    except PuenteError as exc:
        error = error_message(request_language(request), exc)
        if back == "/workflows":
            context = {**_list_context(request, session, me), "list_error": error}
            return render(request, "workflows/list.html", context, status_code=exc.status_code)
        return show_builder(
            request, session, me, workflow, status_code=exc.status_code, error=error
        )
    done = "enabled" if enabled else "disabled"
    return RedirectResponse(f"{back}?flash={done}", status_code=303)


@router.get("/workflows/{workflow_id}/export")
def export(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    published = request.query_params.get("published") == "1"
    document = service.export_workflow(session, workflow, published=published)
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="workflow-{workflow.id}.json"'},
    )


@router.post("/workflows/{workflow_id}/delete", response_class=HTMLResponse)
def delete(request: Request, workflow_id: int, session: DbDep, me: Manager) -> Response:
    workflow = service.access_workflow(session, me.actor.workspace_id, workflow_id)
    service.do_delete_workflow(session, workflow, me.actor)
    return RedirectResponse("/workflows?flash=deleted", status_code=303)
