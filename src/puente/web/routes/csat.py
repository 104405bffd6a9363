"""The satisfaction survey pages: each number's survey (supervisors and admins), reached
from the number's page or from the settings' list of numbers. The rules and the words
the customer reads are reports.csat_settings'."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from puente.accounts.permissions import Perm
from puente.channels.models import Channel
from puente.channels.service import access_channel, list_channels
from puente.errors import InvalidInput
from puente.reports import csat_settings as cs
from puente.web.deps import DbDep, WebContext, require_permission
from puente.web.i18n import LANGUAGE_NAMES, N_
from puente.web.templating import render, request_language, translate

router = APIRouter(include_in_schema=False)
Configurer = Annotated[WebContext, Depends(require_permission(Perm.AUTOMATION))]
FIELD_LABELS = {
    "mode": N_("Survey"),
    "language": N_("Language of the survey"),
    "question": N_("Question"),
    "comment_question": N_("Follow-up question"),
    "template": N_("Template outside the 24-hour window"),
}


@router.get("/settings/surveys", response_class=HTMLResponse)
def surveys_list(request: Request, session: DbDep, me: Configurer) -> Response:
    rows = [
        {"c": channel, "s": cs.survey_settings(channel)}
        for channel in list_channels(session, me.workspace.id)
    ]
    labels = {m.value: translate(request, label) for m, label in cs.MODE_LABELS.items()}
    return render(request, "settings/surveys.html", {"rows": rows, "mode_labels": labels})


def _form_of(request: Request, channel: Channel) -> dict[str, Any]:
    """What the form shows: the stored survey, in the reader's language when none is."""
    stored = isinstance((channel.settings or {}).get(cs.SETTING), dict)
    settings = cs.survey_settings(channel)
    if not stored:
        language = request_language(request)
        settings = cs.SurveySettings(language=language if language in cs.LANGUAGES else "es")
    return {
        "mode": settings.mode,
        "language": settings.language,
        "question": settings.question_text,
        "follow_up": settings.follow_up,
        "comment_question": settings.comment_text,
        "template": f"{settings.template_name}|{settings.template_language}"
        if settings.template_name
        else "",
    }


def _page(
    request: Request,
    session: Session,
    channel: Channel,
    form: dict[str, Any],
    problems: list[dict[str, str]] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    language = form["language"] if form["language"] in cs.LANGUAGES else "es"
    buttons = cs.SurveySettings(mode=cs.Mode.BUTTONS.value, language=language).options
    context = {
        "c": channel,
        "form": form,
        "modes": [(m.value, translate(request, label)) for m, label in cs.MODE_LABELS.items()],
        "survey_languages": [(code, LANGUAGE_NAMES[code]) for code in cs.LANGUAGES],
        "templates": cs.survey_templates(session, channel),
        "button_answers": ", ".join(f"{o.title} ({o.score})" for o in buttons),
        "rows": cs.SurveySettings(mode=cs.Mode.LIST.value, language=language).options,
        "problems": [
            {
                "field": p["field"],
                "where": translate(request, FIELD_LABELS.get(p["field"], p["field"])),
                "message": translate(request, p["message"]),
            }
            for p in problems or []
        ],
        "flash": translate(request, "Saved.") if request.query_params.get("flash") else None,
    }
    return render(request, "channels/survey.html", context, status_code=status_code)


@router.get("/channels/{channel_id}/survey", response_class=HTMLResponse)
def survey_page(request: Request, channel_id: int, session: DbDep, me: Configurer) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    return _page(request, session, channel, _form_of(request, channel))


@router.post("/channels/{channel_id}/survey", response_class=HTMLResponse)
def survey_save(
    request: Request,
    channel_id: int,
    session: DbDep,
    me: Configurer,
    mode: Annotated[str, Form(max_length=16)] = cs.Mode.OFF.value,
    language: Annotated[str, Form(max_length=8)] = "es",
    question: Annotated[str, Form(max_length=4096)] = "",
    follow_up: Annotated[str | None, Form(max_length=8)] = None,
    comment_question: Annotated[str, Form(max_length=4096)] = "",
    template: Annotated[str, Form(max_length=600)] = "",
) -> Response:
    channel = access_channel(session, me.workspace.id, channel_id)
    name, _, template_language = template.partition("|")
    raw = {
        "mode": mode,
        "language": language,
        "question": question,
        "follow_up": follow_up == "yes",
        "comment_question": comment_question,
        "template": {"name": name, "language": template_language} if name else None,
    }
    try:
        cs.do_set_survey(session, channel, raw, me.actor)
    except InvalidInput as exc:
        form = {**raw, "template": template}
        problems = list(exc.details or [])
        return _page(request, session, channel, form, problems, status_code=422)
    return RedirectResponse(f"/channels/{channel_id}/survey?flash=saved", status_code=303)
