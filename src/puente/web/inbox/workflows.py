"""Starting a workflow from a conversation: "Run a workflow" in its panel offers the
workspace's switched-on workflows whose trigger is "started by hand", and the run shows in
the conversation's timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from puente.accounts.gate import access_conversation
from puente.automation.workflows.models import Workflow
from puente.automation.workflows.service import do_start_manual_run
from puente.contacts.models import Contact
from puente.errors import Conflict
from puente.web.deps import DbDep
from puente.web.i18n import N_
from puente.web.inbox.common import Replier, done
from puente.web.templating import translate

router = APIRouter(include_in_schema=False)
Short = Annotated[str, Form(max_length=200)]

# What the conversation page says after the form (?flash=...): (msgid, kind).
FLASHES = {
    "workflow_started": (N_("The workflow started: its steps show in the timeline."), "ok"),
    "workflow_unavailable": (
        N_(
            "That workflow cannot be started from a conversation now: it was switched off or "
            "no longer starts by hand."
        ),
        "error",
    ),
}


def manual_workflows(workspace_id: int) -> ColumnElement[bool]:
    """The workflows a person may start from a conversation: switched on, and published
    with the trigger "started by hand"."""
    return and_(
        Workflow.workspace_id == workspace_id,
        Workflow.enabled.is_(True),
        Workflow.trigger_type == "manual",
    )


def flash_of(request: Request) -> tuple[str, str] | None:
    """The conversation page's notice, in the reader's language, and its kind."""
    found = FLASHES.get(request.query_params.get("flash", ""))
    return (translate(request, found[0]), found[1]) if found else None


def _workflow(session: Session, workspace_id: int, raw_id: str) -> Workflow | None:
    if not raw_id.isdigit():
        return None
    return session.scalar(
        select(Workflow).where(Workflow.id == int(raw_id), manual_workflows(workspace_id))
    )


@router.post("/inbox/c/{conversation_id}/workflows/run")
def run_workflow(
    request: Request,
    session: DbDep,
    me: Replier,
    conversation_id: int,
    workflow_id: Short = "",
    key: Short = "",
) -> Response:
    # Whoever may act on the conversation (as assigning or closing it) and write to its
    # customer: the workflow's steps usually do.
    conversation = access_conversation(session, me.actor, conversation_id)
    back = f"/inbox/c/{conversation.id}"
    workflow = _workflow(session, me.workspace.id, workflow_id)
    if workflow is None:
        return done(request, f"{back}?flash=workflow_unavailable")
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None  # conversations go with their contact
    # The form's key makes a double click start one run, not two.
    run_key = f"inbox:{key.strip()[:64]}:{conversation.id}" if key.strip() else None
    try:
        do_start_manual_run(
            session,
            workflow,
            contact=contact,
            conversation=conversation,
            actor=me.actor,
            key=run_key,
        )
    except Conflict as exc:
        if exc.code != "duplicate_run":
            return done(request, f"{back}?flash=workflow_unavailable")
    return done(request, f"{back}?flash=workflow_started")
