"""Web pages for message templates: the list with status badges, a create form checked
live against Meta's rules, the preview with sample values, sync and delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from puente.accounts.permissions import Perm
from puente.errors import PuenteError
from puente.outbound.templates import service
from puente.outbound.templates.preview import render_preview
from puente.outbound.templates.rules import (
    BUTTON_TYPES,
    CATEGORIES,
    HEADER_FORMATS,
    TemplateProblem,
    template_languages,
    validate_template,
)
from puente.outbound.templates.service import TemplateInvalid
from puente.web.deps import DbDep, RuntimeDep, WebContext, require_permission
from puente.web.i18n import N_, error_message
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Manager = Annotated[WebContext, Depends(require_permission(Perm.TEMPLATES))]

# The pages show a template's status, category and header kind as `_(value|lower)`;
# marked here for the catalogue (one per TemplateStatus, CATEGORIES and HEADER_FORMATS).
LABELS = (
    N_("draft"),
    N_("pending"),
    N_("approved"),
    N_("rejected"),
    N_("paused"),
    N_("disabled"),
    N_("flagged"),
    N_("in_appeal"),
    N_("locked"),
    N_("limit_exceeded"),
    N_("archived"),
    N_("pending_deletion"),
    N_("deleted"),
    N_("marketing"),
    N_("utility"),
    N_("authentication"),
    N_("text"),
    N_("image"),
    N_("video"),
    N_("document"),
    N_("location"),
)

FORM_FIELDS = (
    "waba_id",
    "name",
    "category",
    "language",
    "parameter_format",
    "header_format",
    "header_text",
    "header_sample",
    "body_text",
    "body_samples",
    "footer_text",
    "buttons",
)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def template_from_form(form: dict[str, str]) -> dict[str, Any]:
    """Meta's create body from the form's plain fields.

    Body samples are one per line, in variable order (or `name=value` for named
    variables); buttons are one per line as `TYPE | text | url, phone or code | sample`.
    """
    named = form.get("parameter_format") == "named"
    components: list[dict[str, Any]] = []
    header_format = form.get("header_format", "").upper()
    if header_format == "TEXT":
        header: dict[str, Any] = {
            "type": "HEADER",
            "format": "TEXT",
            "text": form.get("header_text", ""),
        }
        sample = form.get("header_sample", "").strip()
        if sample:
            if named and "=" in sample:
                key, value = sample.split("=", 1)
                header["example"] = {
                    "header_text_named_params": [
                        {"param_name": key.strip(), "example": value.strip()}
                    ]
                }
            else:
                header["example"] = {"header_text": [sample]}
        components.append(header)
    elif header_format:
        sample = form.get("header_sample", "").strip()
        header = {"type": "HEADER", "format": header_format}
        if sample:
            header["example"] = {"header_handle": [sample]}
        components.append(header)
    body: dict[str, Any] = {"type": "BODY", "text": form.get("body_text", "")}
    samples = _lines(form.get("body_samples", ""))
    if samples:
        if named:
            pairs = [s.split("=", 1) for s in samples if "=" in s]
            body["example"] = {
                "body_text_named_params": [
                    {"param_name": k.strip(), "example": v.strip()} for k, v in pairs
                ]
            }
        else:
            body["example"] = {"body_text": [samples]}
    components.append(body)
    if form.get("footer_text", "").strip():
        components.append({"type": "FOOTER", "text": form["footer_text"].strip()})
    buttons = [_button(line) for line in _lines(form.get("buttons", ""))]
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return {
        "name": form.get("name", "").strip(),
        "category": form.get("category", ""),
        "language": form.get("language", ""),
        "parameter_format": form.get("parameter_format") or "positional",
        "components": components,
    }


def _button(line: str) -> dict[str, Any]:
    parts = [p.strip() for p in line.split("|")]
    kind = parts[0].upper()
    button: dict[str, Any] = {"type": kind}
    if len(parts) > 1 and parts[1]:
        button["text"] = parts[1]
    target = parts[2] if len(parts) > 2 else ""
    sample = parts[3] if len(parts) > 3 else ""
    if kind == "URL":
        button["url"] = target
        if sample:
            button["example"] = [sample]
    elif kind == "PHONE_NUMBER":
        button["phone_number"] = target
    elif kind == "COPY_CODE":
        button["example"] = target
    elif kind == "OTP":
        button["otp_type"] = target or "COPY_CODE"
    return button


def _shown(request: Request, problems: Sequence[TemplateProblem]) -> list[dict[str, str]]:
    """The problems as the page lists them, each in the reader's language."""
    return [
        {"field": p.field, "code": p.code, "message": translate(request, p.template, **p.params)}
        for p in problems
    ]


async def _form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: str(data.get(k) or "") for k in FORM_FIELDS}


def _form_context(
    form: dict[str, str],
    problems: list[dict[str, str]],
    accounts: list[service.WabaChoice] | None = None,
) -> dict[str, Any]:
    data = template_from_form(form)
    preview = render_preview(data["components"]) if not problems else None
    return {
        "form": form,
        # The account choice shows only when there are several to choose from.
        "accounts": accounts or [],
        "problems": problems,
        "preview": preview,
        "categories": CATEGORIES,
        "template_languages": sorted(template_languages()),
        "header_formats": HEADER_FORMATS,
        "button_types": BUTTON_TYPES,
    }


@router.get("/templates", response_class=HTMLResponse)
def templates_page(
    request: Request, session: DbDep, me: Manager, status: str | None = None
) -> Response:
    rows = service.list_templates(session, me.actor.workspace_id, status=status or None)
    groups: dict[str, list[Any]] = {}
    for t in rows:
        groups.setdefault(t.name, []).append(t)
    return render(
        request,
        "templates/list.html",
        {"groups": groups, "status": status or "", "flash": _flash(request)},
    )


def _flash(request: Request) -> str | None:
    flash = request.query_params.get("flash")
    if flash == "synced":
        return translate(request, "Templates synced from Meta.")
    if flash == "deleted":
        return translate(request, "Template deleted.")
    return None


@router.post("/templates/sync", response_class=HTMLResponse)
def templates_sync(request: Request, session: DbDep, runtime: RuntimeDep, me: Manager) -> Response:
    try:
        with session.begin_nested():
            service.do_sync_workspace(session, runtime, me.actor.workspace_id, me.actor)
    except PuenteError as exc:
        rows = service.list_templates(session, me.actor.workspace_id)
        groups: dict[str, list[Any]] = {}
        for t in rows:
            groups.setdefault(t.name, []).append(t)
        error = error_message(request_language(request), exc)
        context = {"groups": groups, "status": "", "error": error}
        return render(request, "templates/list.html", context, status_code=exc.status_code)
    return RedirectResponse("/templates?flash=synced", status_code=303)


@router.get("/templates/new", response_class=HTMLResponse)
def template_new(request: Request, session: DbDep, me: Manager) -> Response:
    accounts = service.waba_choices(session, me.actor.workspace_id)
    form = dict.fromkeys(FORM_FIELDS, "")
    form.update(category="UTILITY", language="es", parameter_format="positional")
    # The account of the first number connected: in most workspaces the main one.
    form["waba_id"] = accounts[0].waba_id if accounts else ""
    return render(request, "templates/new.html", _form_context(form, [], accounts))


@router.post("/templates/check", response_class=HTMLResponse)
async def template_check(request: Request, me: Manager) -> Response:
    """The live check: problems (or the preview) for the form as typed so far."""
    form = await _form(request)
    problems = _shown(request, validate_template(template_from_form(form)))
    return render(request, "templates/_check.html", _form_context(form, problems))


@router.post("/templates/new", response_class=HTMLResponse)
async def template_create(
    request: Request, session: DbDep, runtime: RuntimeDep, me: Manager
) -> Response:
    form = await _form(request)
    # Submitting calls Meta with the blocking client, so it runs off the event loop.
    return await run_in_threadpool(_create, request, session, runtime, me, form)


def _create(
    request: Request, session: DbDep, runtime: RuntimeDep, me: WebContext, form: dict[str, str]
) -> Response:
    accounts = service.waba_choices(session, me.actor.workspace_id)
    try:
        with session.begin_nested():
            template = service.do_create_template(
                session,
                runtime,
                workspace_id=me.actor.workspace_id,
                data=template_from_form(form),
                waba_id=form["waba_id"] or None,
                created_by_id=me.user.id,
                actor=me.actor,
            )
    except TemplateInvalid as exc:
        problems = _shown(request, exc.problems)
        context = _form_context(form, problems, accounts)
        return render(request, "templates/new.html", context, status_code=422)
    except PuenteError as exc:
        error = error_message(request_language(request), exc)
        context = {**_form_context(form, [], accounts), "error": error}
        return render(request, "templates/new.html", context, status_code=exc.status_code)
    return RedirectResponse(f"/templates/{template.id}", status_code=303)


@router.get("/templates/{template_id}", response_class=HTMLResponse)
def template_detail(request: Request, template_id: int, session: DbDep, me: Manager) -> Response:
    template = service.access_template(session, me.actor.workspace_id, template_id)
    # Sample values may be overridden from the query string: body.1=Ana, header.1=...
    values: dict[str, dict[str, str]] = {"header": {}, "body": {}, "buttons": {}}
    for key, value in request.query_params.items():
        part, _, name = key.partition(".")
        if part in values and name and value:
            values[part][name] = value
    preview = render_preview(template.components or [], values)
    accounts = service.waba_choices(session, me.actor.workspace_id)
    account = next((a for a in accounts if a.waba_id == template.waba_id), None)
    return render(
        request,
        "templates/detail.html",
        {
            "t": template,
            "preview": preview,
            "values": values,
            "account": account if len(accounts) > 1 else None,
        },
    )


@router.get("/templates/{template_id}/status", response_class=HTMLResponse)
def template_status(request: Request, template_id: int, session: DbDep, me: Manager) -> Response:
    """The status line, polled by the detail page while Meta reviews the template."""
    template = service.access_template(session, me.actor.workspace_id, template_id)
    return render(request, "templates/_status.html", {"t": template})


@router.post("/templates/{template_id}/delete", response_class=HTMLResponse)
def template_delete(
    request: Request, template_id: int, session: DbDep, runtime: RuntimeDep, me: Manager
) -> Response:
    template = service.access_template(session, me.actor.workspace_id, template_id)
    service.do_delete_template(session, runtime, template, me.actor)
    return RedirectResponse("/templates?flash=deleted", status_code=303)
