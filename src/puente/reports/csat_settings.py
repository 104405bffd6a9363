"""A number's satisfaction survey (`channel.settings["csat"]`): off, reply buttons or a
list, the question, the follow-up asking for a comment, the template sent outside the
24-hour window; and what the customer reads, in the survey's language.

WhatsApp allows at most three reply buttons, so the buttons offer three answers (scores 1,
3 and 5); a list offers five rows, 1 to 5."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.audit import Action
from puente.channels.models import Channel
from puente.errors import InvalidInput
from puente.outbound.broadcasts.params import template_targets
from puente.outbound.models import MessageTemplate

SETTING = "csat"
MAX_QUESTION = 1024  # the body of an interactive message


def N_(message: str) -> str:
    """Marks a msgid the web translates (scripts/i18n.py extracts N_'s argument)."""
    return message


class Mode(enum.StrEnum):
    OFF = "off"
    BUTTONS = "buttons"
    LIST = "list"


@dataclass(frozen=True)
class Option:
    score: int
    title: str  # a button's (at most 20 characters) or a row's (24)
    description: str = ""  # a list row's second line


# What the customer reads. Written per language, as the bot's handoff texts are: they go
# to customers, not to the team, and the survey's language is chosen with it.
LANGUAGES = ("es", "en")
TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "question": "¡Gracias por escribirnos! ¿Cómo calificarías la atención que recibiste?",
        "comment": "¿Quieres contarnos algo más? Escribe tu comentario aquí.",
        "list_button": "Calificar",
        "section": "Tu calificación",
    },
    "en": {
        "question": "Thank you for writing to us! How would you rate the help you got?",
        "comment": "Would you like to tell us more? Write your comment here.",
        "list_button": "Rate",
        "section": "Your rating",
    },
}
BUTTONS: dict[str, dict[int, str]] = {
    "es": {5: "😀 Excelente", 3: "😐 Regular", 1: "😞 Mala"},
    "en": {5: "😀 Great", 3: "😐 OK", 1: "😞 Poor"},
}
ROWS: dict[str, dict[int, str]] = {
    "es": {5: "Excelente", 4: "Buena", 3: "Regular", 2: "Mala", 1: "Muy mala"},
    "en": {5: "Excellent", 4: "Good", 3: "OK", 2: "Poor", 1: "Very poor"},
}

# The settings page's words for the modes, and its explanations (translated there).
MODE_LABELS = {
    Mode.OFF: N_("Off: no survey"),
    Mode.BUTTONS: N_("Reply buttons (3 answers)"),
    Mode.LIST: N_("A list (5 answers, 1 to 5)"),
}
MODE_UNKNOWN = N_("choose off, reply buttons or a list")
QUESTION_TOO_LONG = N_("at most 1,024 characters")
LANGUAGE_UNKNOWN = N_("choose Spanish or English")
TEMPLATE_UNUSABLE = N_("choose an approved template without variables, or none")


@dataclass(frozen=True)
class SurveySettings:
    mode: str = Mode.OFF.value
    language: str = "es"
    question: str = ""  # empty: the language's default
    follow_up: bool = False
    comment_question: str = ""  # empty: the language's default
    template_name: str = ""  # empty: no survey outside the window
    template_language: str = ""

    @property
    def on(self) -> bool:
        return self.mode != Mode.OFF.value

    @property
    def texts(self) -> dict[str, str]:
        return TEXTS[self.language]

    @property
    def question_text(self) -> str:
        return self.question or self.texts["question"]

    @property
    def comment_text(self) -> str:
        return self.comment_question or self.texts["comment"]

    @property
    def options(self) -> list[Option]:
        """The answers offered, best first, as the customer sees them."""
        if self.mode == Mode.LIST.value:
            return [
                Option(score, title, "★" * score + "☆" * (5 - score))
                for score, title in ROWS[self.language].items()
            ]
        return [Option(score, title) for score, title in BUTTONS[self.language].items()]

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "language": self.language,
            "question": self.question,
            "follow_up": self.follow_up,
            "comment_question": self.comment_question,
            "template": {"name": self.template_name, "language": self.template_language}
            if self.template_name
            else None,
        }


def survey_settings(channel: Channel) -> SurveySettings:
    """The number's survey as stored; off when none was set (or it cannot be read)."""
    raw = (channel.settings or {}).get(SETTING)
    if not isinstance(raw, Mapping):
        return SurveySettings()
    try:
        return parse_survey_settings(raw)
    except InvalidInput:
        return SurveySettings()


def parse_survey_settings(raw: Mapping[str, Any]) -> SurveySettings:
    """The settings `raw` (the stored form) describes; InvalidInput naming each problem."""
    problems: list[dict[str, str]] = []
    mode = str(raw.get("mode") or Mode.OFF.value)
    if mode not in {m.value for m in Mode}:
        problems.append({"field": "mode", "message": MODE_UNKNOWN})
    language = str(raw.get("language") or "es")
    if language not in LANGUAGES:
        problems.append({"field": "language", "message": LANGUAGE_UNKNOWN})
    question = str(raw.get("question") or "").strip()
    comment = str(raw.get("comment_question") or "").strip()
    for field, text in (("question", question), ("comment_question", comment)):
        if len(text) > MAX_QUESTION:
            problems.append({"field": field, "message": QUESTION_TOO_LONG})
    template = raw.get("template")
    name = language_code = ""
    if isinstance(template, Mapping):
        name = str(template.get("name") or "").strip()
        language_code = str(template.get("language") or "").strip()
    if problems:
        raise InvalidInput("the survey settings are not valid", details=problems)
    return SurveySettings(
        mode=mode,
        language=language,
        question=question,
        follow_up=raw.get("follow_up") is True,
        comment_question=comment,
        template_name=name,
        template_language=language_code if name else "",
    )


def survey_templates(session: Session, channel: Channel) -> list[MessageTemplate]:
    """The templates a survey may send outside the window: approved on the number's
    account, with nothing to fill in (the survey has no values to give them)."""
    found = session.scalars(
        select(MessageTemplate)
        .where(
            MessageTemplate.workspace_id == channel.workspace_id,
            MessageTemplate.waba_id == channel.waba_id,
            MessageTemplate.status == "APPROVED",
        )
        .order_by(MessageTemplate.name, MessageTemplate.language)
    )
    return [t for t in found if not template_targets(t.components)]


def do_set_survey(
    session: Session, channel: Channel, raw: Mapping[str, Any], actor: Any
) -> SurveySettings:
    """Check and store the number's survey (422 naming every problem)."""
    settings = parse_survey_settings(raw)
    if settings.template_name and not any(
        t.name == settings.template_name and t.language == settings.template_language
        for t in survey_templates(session, channel)
    ):
        raise InvalidInput(
            "the survey settings are not valid",
            details=[{"field": "template", "message": TEMPLATE_UNUSABLE}],
        )
    # The settings are one JSON value: read them under a row lock so that a change another
    # transaction just made to another key is kept, not overwritten.
    session.refresh(channel, attribute_names=["settings"], with_for_update=True)
    channel.settings = {**(channel.settings or {}), SETTING: settings.as_json()}
    audit.record(
        session,
        workspace_id=channel.workspace_id,
        actor=actor,
        action=Action.CHANNEL_SETTINGS_CHANGED,
        target=f"channel {channel.id}",
        # What was chosen, never the questions' text.
        details={
            SETTING: {
                "mode": settings.mode,
                "follow_up": settings.follow_up,
                "template": settings.template_name or None,
            }
        },
    )
    return settings
