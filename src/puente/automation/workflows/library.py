"""Ready-made workflows (issue #16, item 6): the classic cases a business switching from
another platform expects, each installed in one click as a draft it can then edit.

Each builds its definition for a workspace: where it needs a team or an agent it takes
the workspace's first, and leaves the step without one when there is none, so that
publishing names what is missing. What the customer reads is written in Spanish or
English (workspaces have no language of their own: the installer says which); names
and descriptions are English msgids the web translates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.accounts.models import Membership, Role, Team, User
from puente.automation.workflows.definition import Definition
from puente.automation.workflows.models import Workflow
from puente.automation.workflows.service import do_create_workflow
from puente.errors import InvalidInput, NotFound

LANGUAGES = ("es", "en")
DEFAULT_LANGUAGE = "es"
# How long the high-volume workflow waits before telling the customer they are still in line.
FOLLOW_UP_MINUTES = 10
# How long the menu waits for an answer before handing the conversation to the team.
MENU_TIMEOUT_MINUTES = 30


def N_(message: str) -> str:
    """Marks a msgid the web translates (scripts/i18n.py extracts N_'s argument); the
    domain does not import puente.web.i18n's own."""
    return message


@dataclass(frozen=True)
class Targets:
    """Whom the workflow's assign steps name: the workspace's first team and agent."""

    team_id: int | None = None
    agent_id: int | None = None


@dataclass(frozen=True)
class LibraryWorkflow:
    key: str
    name: str  # an English msgid
    description: str  # an English msgid
    build: Callable[[Targets, str], Definition]  # (targets, language of the customer texts)


# -- what the customer reads -------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "received": {
        "es": "¡Gracias por escribirnos! Recibimos tu mensaje y en breve alguien del equipo "
        "te responde.",
        "en": "Thanks for writing to us! We got your message and someone from the team will "
        "answer you shortly.",
    },
    "still_waiting": {
        "es": "Seguimos aquí: hoy tenemos muchas conversaciones y te atenderemos en cuanto "
        "alguien del equipo se libere. Gracias por tu paciencia.",
        "en": "We are still here: we are busier than usual today and someone will be with you "
        "as soon as they are free. Thank you for your patience.",
    },
    "now_talking": {
        "es": "Ahora estás hablando con {agent.name}.",
        "en": "You are now talking to {agent.name}.",
    },
    "closed": {
        "es": "Hola {contact.name|}👋 Gracias por escribirnos. En este momento estamos fuera "
        "de horario; te responderemos en cuanto abramos.",
        "en": "Hi {contact.name|}👋 Thanks for writing to us. We are closed right now; we will "
        "answer you as soon as we open.",
    },
    "busy": {
        "es": "En este momento todos nuestros agentes están ocupados. Ya estás en la fila y te "
        "atenderemos en cuanto alguien se libere.",
        "en": "All our agents are busy right now. You are in line and someone will be with you "
        "as soon as they are free.",
    },
    "menu": {
        "es": "¡Hola! ¿En qué te podemos ayudar?",
        "en": "Hi! How can we help you?",
    },
    "menu_retry": {
        "es": "Elige una de las opciones, por favor.",
        "en": "Please choose one of the options.",
    },
    "sales": {"es": "Ventas", "en": "Sales"},
    "support": {"es": "Soporte", "en": "Support"},
    "other": {"es": "Otro", "en": "Other"},
    "tell_us": {
        "es": "Cuéntanos qué necesitas y alguien del equipo te responde.",
        "en": "Tell us what you need and someone from the team will answer you.",
    },
    "not_understood": {
        "es": "No logramos entender tu respuesta; alguien del equipo te atiende en breve.",
        "en": "We could not understand your answer; someone from the team will be with you "
        "shortly.",
    },
}


def text(key: str, language: str) -> str:
    return TEXTS[key][language if language in LANGUAGES else DEFAULT_LANGUAGE]


# -- the definitions ---------------------------------------------------------------------------


def _definition(trigger: dict[str, Any], *steps: dict[str, Any]) -> Definition:
    return Definition.model_validate({"version": 1, "trigger": trigger, "steps": list(steps)})


def _assign(step_id: str, targets: Targets, *, team: bool, **more: Any) -> dict[str, Any]:
    """An assign step naming the team (team=True) or the agent, when the workspace has
    one; without it the step waits for the builder, and publishing says so."""
    target = {"team_id": targets.team_id} if team else {"agent_id": targets.agent_id}
    return {"id": step_id, "type": "assign", **{k: v for k, v in target.items() if v}, **more}


FIRST_MESSAGE = {"type": "message_received", "match": "first"}


def close_and_bot_on(targets: Targets, language: str) -> Definition:
    return _definition({"type": "conversation_closed"}, {"id": "bot_on", "type": "bot_on"})


def assign_to_agent(targets: Targets, language: str) -> Definition:
    return _definition({"type": "manual"}, _assign("assign", targets, team=False))


def auto_assign_sales(targets: Targets, language: str) -> Definition:
    return _definition(FIRST_MESSAGE, _assign("assign_team", targets, team=True))


def auto_assign_support(targets: Targets, language: str) -> Definition:
    return _definition(
        FIRST_MESSAGE,
        {
            "id": "received",
            "type": "send_message",
            "text": text("received", language),
            "next": "assign_team",
        },
        _assign("assign_team", targets, team=True),
    )


def auto_assign_high_volume(targets: Targets, language: str) -> Definition:
    return _definition(
        FIRST_MESSAGE,
        _assign("assign_team", targets, team=True, next="wait"),
        {"id": "wait", "type": "wait", "minutes": FOLLOW_UP_MINUTES, "next": "still_unassigned"},
        {
            "id": "still_unassigned",
            "type": "branch",
            "conditions": {"rules": [{"field": "conversation.assignee_id", "op": "not_exists"}]},
            "next": "follow_up",
        },
        {"id": "follow_up", "type": "send_message", "text": text("still_waiting", language)},
    )


def message_on_assignment(targets: Targets, language: str) -> Definition:
    # There is no "assigned" trigger: an agent starts it from a conversation, and it
    # assigns before it introduces the agent.
    return _definition(
        {"type": "manual"},
        _assign("assign", targets, team=False, next="introduce"),
        {"id": "introduce", "type": "send_message", "text": text("now_talking", language)},
    )


def out_of_hours(targets: Targets, language: str) -> Definition:
    return _definition(
        {"type": "outside_hours"},
        {"id": "reply", "type": "send_message", "text": text("closed", language)},
    )


def agents_busy(targets: Targets, language: str) -> Definition:
    return _definition(
        FIRST_MESSAGE,
        {
            "id": "open_now",
            "type": "branch",
            "conditions": {"rules": [{"field": "business_hours", "op": "eq", "value": "open"}]},
            "next": "busy",
        },
        {"id": "busy", "type": "send_message", "text": text("busy", language)},
    )


def menu_routing(targets: Targets, language: str) -> Definition:
    options = [
        {"id": "sales", "title": text("sales", language), "next": "assign_sales"},
        {"id": "support", "title": text("support", language), "next": "assign_support"},
        {"id": "other", "title": text("other", language), "next": "tell_us"},
    ]
    return _definition(
        FIRST_MESSAGE,
        {
            "id": "menu",
            "type": "question",
            "text": text("menu", language),
            "options": options,
            "retry_text": text("menu_retry", language),
            "on_invalid": "not_understood",
            "timeout_minutes": MENU_TIMEOUT_MINUTES,
            "on_timeout": "assign_support",
        },
        _assign("assign_sales", targets, team=True),
        _assign("assign_support", targets, team=True),
        {"id": "tell_us", "type": "send_message", "text": text("tell_us", language)},
        {
            "id": "not_understood",
            "type": "send_message",
            "text": text("not_understood", language),
            "next": "assign_support",
        },
    )


LIBRARY: list[LibraryWorkflow] = [
    LibraryWorkflow(
        "close_and_bot_on",
        N_("Close the conversation and turn the bot back on"),
        N_("When a conversation is closed, the bot answers the customer's next messages again."),
        close_and_bot_on,
    ),
    LibraryWorkflow(
        "assign_to_agent",
        N_("Assign to an agent"),
        N_("Started from a conversation: gives it to the agent you choose."),
        assign_to_agent,
    ),
    LibraryWorkflow(
        "auto_assign_sales",
        N_("Auto-assign for a sales team"),
        N_(
            "A new customer's first message goes straight to the sales team, whose routing "
            "picks the agent."
        ),
        auto_assign_sales,
    ),
    LibraryWorkflow(
        "auto_assign_support",
        N_("Auto-assign for support"),
        N_(
            "Tells a new customer their message arrived, then hands the conversation to the "
            "support team."
        ),
        auto_assign_support,
    ),
    LibraryWorkflow(
        "auto_assign_high_volume",
        N_("Auto-assign for a high-volume support team"),
        N_(
            "Hands a new customer's conversation to the support team and, if nobody has taken "
            "it 10 minutes later, tells the customer they are still in line."
        ),
        auto_assign_high_volume,
    ),
    LibraryWorkflow(
        "message_on_assignment",
        N_("Message on assignment"),
        N_(
            "Started from a conversation: assigns it to an agent and tells the customer whom "
            "they are talking to."
        ),
        message_on_assignment,
    ),
    LibraryWorkflow(
        "out_of_hours",
        N_("Out-of-hours reply"),
        N_("Answers a customer who writes while the number is closed."),
        out_of_hours,
    ),
    LibraryWorkflow(
        "agents_busy",
        N_("All agents at capacity"),
        N_(
            "During business hours, tells a new customer that every agent is busy and that "
            "they are in line."
        ),
        agents_busy,
    ),
    LibraryWorkflow(
        "menu_routing",
        N_("Route by the customer's answer to a menu"),
        N_(
            "Asks a new customer what they need (Sales, Support, Other) and sends the "
            "conversation to the team."
        ),
        menu_routing,
    ),
]
BY_KEY = {item.key: item for item in LIBRARY}


# -- installing --------------------------------------------------------------------------------


def library_workflow(key: str) -> LibraryWorkflow:
    item = BY_KEY.get(key)
    if item is None:
        raise NotFound("There is no such ready-made workflow.", code="unknown_template")
    return item


def targets_of(session: Session, workspace_id: int) -> Targets:
    """The workspace's first team and first active agent, either None when it has none."""
    team_id = session.scalar(
        select(Team.id).where(Team.workspace_id == workspace_id).order_by(Team.id).limit(1)
    )
    agent_id = session.scalar(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.workspace_id == workspace_id,
            Membership.role == Role.AGENT.value,
            Membership.is_active.is_(True),
            User.is_active.is_(True),
        )
        .order_by(Membership.id)
        .limit(1)
    )
    return Targets(team_id=team_id, agent_id=agent_id)


def do_install(
    session: Session,
    workspace_id: int,
    key: str,
    actor: Any = None,
    *,
    language: str = DEFAULT_LANGUAGE,
    name: str | None = None,
    description: str | None = None,
) -> Workflow:
    """The ready-made workflow `key` as a new draft of the workspace (template_key=key),
    its customer texts in `language`. The draft's name and description are the library's
    in English unless given (the web passes them translated for whoever installs it)."""
    if language not in LANGUAGES:
        raise InvalidInput(
            "The language of a ready-made workflow is es (Spanish) or en (English).",
            details=[{"field": "language", "message": "es or en"}],
        )
    item = library_workflow(key)
    definition = item.build(targets_of(session, workspace_id), language)
    return do_create_workflow(
        session,
        workspace_id,
        name=name or item.name,
        description=item.description if description is None else description,
        definition=definition,
        actor=actor,
        template_key=item.key,
    )
