"""The Bot page: the knowledge-base bot's settings, a box to try a question (which entry
matches, with what score, and whether the bot would answer or hand off), and its entries,
each added or edited on a page of its own. For supervisors and admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.automation import kb
from puente.automation.kb_bot import Decision, decide
from puente.errors import PuenteError
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import N_, error_message
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Manager = Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))]
MAX_QUESTION = 1000

FLASHES = {
    "saved": N_("Bot settings saved."),
    "added": N_("Entry added."),
    "updated": N_("Entry saved."),
    "deleted": N_("Entry deleted."),
}


def _page_context(
    request: Request, session: Session, me: WebContext, **extra: Any
) -> dict[str, Any]:
    flash = FLASHES.get(request.query_params.get("flash", ""))
    return {
        "settings": kb.bot_settings(me.workspace),
        "entries": kb.list_entries(session, me.actor.workspace_id),
        "flash": translate(request, flash) if flash else None,
        "question": "",
        "decision": None,
        **extra,
    }


@router.get("/bot", response_class=HTMLResponse)
def bot_page(request: Request, session: DbDep, me: Manager) -> Response:
    return render(request, "bot/page.html", _page_context(request, session, me))


@router.post("/bot/settings", response_class=HTMLResponse)
async def bot_settings_save(request: Request, session: DbDep, me: Manager) -> Response:
    form = await request.form()
    # A number left empty keeps its default.
    raw = {
        "enabled": form.get("enabled") == "yes",
        "handoff": {"es": form.get("handoff_es") or "", "en": form.get("handoff_en") or ""},
        **{k: form[k] for k in ("threshold", "max_unanswered") if form.get(k)},
    }
    try:
        settings = kb.check_bot_settings(raw)
    except PuenteError as exc:
        error = error_message(request_language(request), exc)
        context = _page_context(request, session, me, settings_error=error)
        return render(request, "bot/page.html", context, status_code=exc.status_code)
    kb.do_save_bot_settings(session, me.workspace, settings, me.actor)
    return RedirectResponse("/bot?flash=saved", status_code=303)


def _matched_entries(session: Session, me: WebContext, decision: Decision) -> dict[int, Any]:
    wanted = {m.entry_id for m in decision.matches}
    return {
        v.entry.id: v
        for v in kb.list_entries(session, me.actor.workspace_id)
        if v.entry.id in wanted
    }


@router.post("/bot/test", response_class=HTMLResponse)
async def bot_test(request: Request, session: DbDep, me: Manager) -> Response:
    """What the bot would do with a question; stores nothing. htmx swaps the result in;
    without scripts the whole page comes back with it."""
    form = await request.form()
    question = str(form.get("question") or "").strip()[:MAX_QUESTION]
    settings = kb.bot_settings(me.workspace)
    decision = decide(session, me.actor.workspace_id, settings, question) if question else None
    context = {
        "question": question,
        "decision": decision,
        "settings": settings,
        "matched": _matched_entries(session, me, decision) if decision else {},
    }
    if request.headers.get("hx-request"):
        return render(request, "bot/_test.html", context)
    return render(request, "bot/page.html", _page_context(request, session, me, **context))


# -- entries ----------------------------------------------------------------------------------


def _entry_form(form: Any) -> dict[str, Any]:
    return {
        "language": str(form.get("language") or "es"),
        "phrasings": str(form.get("phrasings") or ""),
        "answer": str(form.get("answer") or ""),
        "enabled": form.get("enabled") == "yes",
    }


def _checked(request: Request, form: dict[str, Any]) -> kb.EntryData | str:
    try:
        return kb.check_entry(**form)
    except PuenteError as exc:
        return error_message(request_language(request), exc)


@router.get("/bot/entries/new", response_class=HTMLResponse)
def entry_new(request: Request, me: Manager) -> Response:
    form = {"language": "es", "phrasings": "", "answer": "", "enabled": True}
    return render(request, "bot/entry.html", {"form": form, "entry_id": None})


@router.post("/bot/entries/new", response_class=HTMLResponse)
async def entry_create(request: Request, session: DbDep, me: Manager) -> Response:
    form = _entry_form(await request.form())
    data = _checked(request, form)
    if isinstance(data, str):
        context = {"form": form, "entry_id": None, "error": data}
        return render(request, "bot/entry.html", context, status_code=422)
    kb.do_create_entry(session, me.actor.workspace_id, data, me.actor)
    return RedirectResponse("/bot?flash=added", status_code=303)


@router.get("/bot/entries/{entry_id}", response_class=HTMLResponse)
def entry_edit(request: Request, entry_id: int, session: DbDep, me: Manager) -> Response:
    view = kb.access_entry(session, me.actor.workspace_id, entry_id)
    form = {**view.data().as_json(), "phrasings": "\n".join(view.phrasings)}
    return render(request, "bot/entry.html", {"form": form, "entry_id": entry_id})


@router.post("/bot/entries/{entry_id}", response_class=HTMLResponse)
async def entry_update(request: Request, entry_id: int, session: DbDep, me: Manager) -> Response:
    view = kb.access_entry(session, me.actor.workspace_id, entry_id)
    form = _entry_form(await request.form())
    data = _checked(request, form)
    if isinstance(data, str):
        context = {"form": form, "entry_id": entry_id, "error": data}
        return render(request, "bot/entry.html", context, status_code=422)
    kb.do_update_entry(session, view, data, me.actor)
    return RedirectResponse("/bot?flash=updated", status_code=303)


@router.post("/bot/entries/{entry_id}/delete", response_class=HTMLResponse)
def entry_delete(request: Request, entry_id: int, session: DbDep, me: Manager) -> Response:
    view = kb.access_entry(session, me.actor.workspace_id, entry_id)
    kb.do_delete_entry(session, view, me.actor)
    return RedirectResponse("/bot?flash=deleted", status_code=303)
