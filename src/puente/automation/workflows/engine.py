"""Taking a run's steps. `advance` runs steps one after another inside the caller's
transaction until the run waits (a timer, a question, an HTTP call), ends or fails.

Why this never sends a step's message twice nor skips it: a step's effects (the queued
message and its outbox item, a tag, an assignment) and the run's move to its next step
are written in the same transaction. A worker killed mid-step rolls back both, and the
run is taken up again at the same step; a committed step is never taken again. The
outbox then sends each queued message at most once per attempt.

An HTTP step is the exception: no transaction stays open while another server answers.
The run stops at the step with the call prepared (`variables["call"]`); the worker makes
the call outside any transaction and `resume_after_call` records the response and goes
on. A worker killed during the call makes it again (at least once, as any webhook).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from puente import metrics
from puente.accounts.gate import Actor
from puente.accounts.models import Team
from puente.automation.workflows.context import RunContext, fold
from puente.automation.workflows.definition import Definition, Step, parse_definition
from puente.automation.workflows.models import (
    RunStatus,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowVersion,
    english,
)
from puente.contacts import service as contacts
from puente.conversations import collab
from puente.conversations.models import (
    ConversationStatus,
    Message,
    MessageSource,
    bot_is_paused,
)
from puente.db.base import utcnow
from puente.errors import PuenteError
from puente.events import WorkflowRunFinished, publish
from puente.jobs import ROUTING, WORKFLOWS
from puente.outbound.broadcasts.params import build_components, template_targets
from puente.outbound.models import MessageTemplate
from puente.outbound.outbox.service import do_queue_message

log = logging.getLogger(__name__)

# A run takes at most this many steps in all: a loop with a wait in it still ends.
STEP_BUDGET = 500
# Runs started by other runs (start_workflow) nest at most this deep.
MAX_DEPTH = 5
# While the worker makes a run's HTTP call, the run is due again only after this much
# more than the call's time-out: then a worker that died during the call is replaced.
CALL_LEASE = dt.timedelta(seconds=30)

# Session.info key: the workflows whose runs this transaction is advancing (their own
# effects must not start them again).
RUNNING_KEY = "puente.workflows.running"


def N_(message: str) -> str:
    """Marks a message for the catalogue; the reader's language is chosen when shown."""
    return message


class Said(Exception):
    """A message for the run list and the timeline: a catalogue text and its values,
    shown in each reader's language (`models.english` gives the English)."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params or None

    @classmethod
    def of_error(cls, exc: PuenteError) -> Said:
        # A domain error keeps its own catalogue text and values when it has them.
        if exc.params:
            return cls(exc.template, **exc.params)
        return cls(exc.message)


class StepFailed(Said):
    """A step could not be done; the message says why."""


@dataclass(frozen=True)
class Outcome:
    """What a step did: go on to `next` (None: the run ends), or stop the run here."""

    next: str | None = None
    stop: str | None = None  # a RunStatus to stop in: waiting, asking, ready (an HTTP call)
    wake_at: dt.datetime | None = None
    detail: str = ""  # a catalogue text, with `params`
    params: dict[str, Any] | None = None
    message_id: int | None = None
    status: str = "ok"  # how the timeline shows it


# Published versions never change: each is parsed once per process. The key holds the
# database (a process may hold several, as tests do) and the version's publishing time
# (SQLite may give a deleted version's id to a new one).
_DEFINITIONS: dict[tuple[int, int, Any], Definition] = {}
_DEFINITIONS_LOCK = threading.Lock()
_MAX_CACHED = 4096


def parsed_version(session: Session, version: WorkflowVersion) -> Definition:
    engine = session.get_bind()
    key = (id(getattr(engine, "engine", engine)), version.id, version.published_at)
    with _DEFINITIONS_LOCK:
        found = _DEFINITIONS.get(key)
    if found is not None:
        return found
    definition = parse_definition(version.definition)
    with _DEFINITIONS_LOCK:
        if len(_DEFINITIONS) >= _MAX_CACHED:
            _DEFINITIONS.clear()
        _DEFINITIONS[key] = definition
    return definition


def definition_of(session: Session, version_id: int) -> Definition:
    version = session.get(WorkflowVersion, version_id)
    if version is None:
        raise StepFailed(N_("The workflow's version is gone."))
    return parsed_version(session, version)


def insert_run(
    session: Session,
    *,
    workspace_id: int,
    workflow_id: int,
    version_id: int,
    definition: Definition,
    trigger: str,
    key: str,
    contact_id: int | None,
    conversation_id: int | None,
    variables: dict[str, Any],
    now: dt.datetime,
    test: bool = False,
) -> WorkflowRun | None:
    """A run ready at its first step now, and the worker woken after commit; None when
    `key` already started this workflow (one event starts each workflow once, however
    often it is delivered)."""
    run = WorkflowRun(
        workspace_id=workspace_id,
        workflow_id=workflow_id,
        version_id=version_id,
        contact_id=contact_id,
        conversation_id=conversation_id,
        trigger=trigger,
        trigger_key=key[:120],
        status=RunStatus.READY.value,
        step_id=definition.first_step(),
        steps_taken=0,
        variables=variables,
        wake_at=now,
        test=test,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        return None
    WORKFLOWS.wake_after_commit(session)
    return run


def actor_for(workspace_id: int) -> Actor:
    """Puente acting by itself: the timeline shows no person, the audit log no entry."""
    return Actor(workspace_id=workspace_id)


def advance(session: Session, run: WorkflowRun, now: dt.datetime | None = None) -> None:
    """Take the run's steps until it waits, ends or fails (the caller commits)."""
    now = now or utcnow()
    running: set[int] = session.info.setdefault(RUNNING_KEY, set())
    running.add(run.workflow_id)
    try:
        definition = definition_of(session, run.version_id)
    except StepFailed as exc:
        _finish(session, run, RunStatus.FAILED, exc, now)
        return
    ctx = RunContext.of_run(session, run, now)
    run.status = RunStatus.READY.value
    run.wake_at = None
    while run.step_id is not None:
        step = definition.step(run.step_id)
        if step is None:
            missing = Said(N_("There is no step “%(step)s”."), step=run.step_id)
            _finish(session, run, RunStatus.FAILED, missing, now)
            return
        resuming = _resuming(run, step)
        if not resuming:
            if run.steps_taken >= STEP_BUDGET:
                budget = Said(
                    N_("The run took %(count)s steps without ending: stopped."), count=STEP_BUDGET
                )
                _finish(session, run, RunStatus.FAILED, budget, now)
                return
            run.steps_taken += 1
            if step.when is not None and not ctx.holds(step.when):
                _record(session, run, step, "skipped", Said(N_("Its conditions did not hold.")))
                run.step_id = step.next
                continue
        try:
            outcome = _take(ctx, run, step)
        except StepFailed as exc:
            _record(session, run, step, "failed", exc)
            _forget_step_state(run)
            if step.on_failure:
                run.step_id = step.on_failure
                continue
            # The run stays at the step that failed (the run list names it), and a retry
            # takes it up there.
            _finish(session, run, RunStatus.FAILED, exc, now)
            return
        except _Stopped as stop:
            _record(session, run, step, "stopped", stop)
            _finish(session, run, RunStatus.STOPPED, stop, now)
            return
        _record(
            session,
            run,
            step,
            outcome.status,
            Said(outcome.detail, **(outcome.params or {})),
            outcome.message_id,
        )
        if outcome.stop is not None:
            run.status = outcome.stop
            run.wake_at = outcome.wake_at
            run.step_id = outcome.next if outcome.stop == RunStatus.WAITING.value else step.id
            if outcome.stop == RunStatus.WAITING.value and run.step_id is None:
                break  # nothing after the wait: done now
            return
        run.step_id = outcome.next
    _finish(session, run, RunStatus.DONE, None, now)


class _Stopped(Said):
    """Someone of the team took the conversation over: the run steps back."""


def _resuming(run: WorkflowRun, step: Step) -> bool:
    """Whether the run comes back to a step it already entered (an answer to its
    question, a question's time-out, an HTTP call's response)."""
    state = run.variables.get("at")
    return isinstance(state, dict) and state.get("step") == step.id


def _set_vars(run: WorkflowRun, **changes: Any) -> None:
    # A new dict each time: the JSON column notices assignment, not mutation.
    variables = dict(run.variables)
    for key, value in changes.items():
        if value is None:
            variables.pop(key, None)
        else:
            variables[key] = value
    run.variables = variables


def _forget_step_state(run: WorkflowRun) -> None:
    _set_vars(run, at=None, reply=None, call=None, response=None)


def _record(
    session: Session,
    run: WorkflowRun,
    step: Step,
    outcome: str,
    detail: Said,
    message_id: int | None = None,
) -> None:
    session.add(
        WorkflowRunStep(
            workspace_id=run.workspace_id,
            run_id=run.id,
            step_id=step.id,
            step_type=step.type,
            outcome=outcome,
            detail=detail.template[:2000],
            detail_params=detail.params,
            message_id=message_id,
        )
    )


def _finish(
    session: Session, run: WorkflowRun, status: RunStatus, error: Said | None, now: dt.datetime
) -> None:
    run.status = status.value
    run.error = error.template if error is not None else None
    run.error_params = error.params if error is not None else None
    run.wake_at = None
    run.finished_at = now
    publish(session, run_finished(run))
    finished = metrics.get().workflow_runs.labels(outcome=status.value)
    metrics.count_on_commit(session, finished)
    if status is not RunStatus.DONE:
        log.info("workflow run %s %s: %s", run.id, status.value, error)


def run_finished(run: WorkflowRun) -> WorkflowRunFinished:
    """The event of a run that just ended (its status and error set)."""
    return WorkflowRunFinished(
        workspace_id=run.workspace_id,
        run_id=run.id,
        workflow_id=run.workflow_id,
        status=run.status,
        contact_id=run.contact_id,
        conversation_id=run.conversation_id,
        error=english(run.error, run.error_params) or None,
    )


# -- the steps ---------------------------------------------------------------------------------


def _take(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    return _HANDLERS[step.type](ctx, run, step)


def _conversation(ctx: RunContext) -> Any:
    if ctx.conversation is None:
        raise StepFailed(N_("The run has no conversation."))
    return ctx.conversation


def _contact(ctx: RunContext) -> Any:
    if ctx.contact is None:
        raise StepFailed(N_("The run has no contact."))
    return ctx.contact


def _check_not_taken_over(ctx: RunContext, run: WorkflowRun) -> None:
    conversation = ctx.conversation
    if conversation is None or run.variables.get("bot_off_by_run"):
        return
    if bot_is_paused(conversation, ctx.now):
        raise _Stopped(N_("A person is answering this conversation: the workflow stepped back."))


def _queue(ctx: RunContext, run: WorkflowRun, message_type: str, content: Any) -> Message:
    _check_not_taken_over(ctx, run)
    contact = _contact(ctx)
    try:
        with ctx.session.begin_nested():
            return do_queue_message(
                ctx.session,
                workspace_id=run.workspace_id,
                message_type=message_type,
                content=content,
                conversation_id=ctx.conversation.id if ctx.conversation else None,
                contact_id=None if ctx.conversation else contact.id,
                source=MessageSource.BOT,
            )
    except PuenteError as exc:
        raise StepFailed.of_error(exc) from None


def _send_message(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    text = ctx.render(step.text)
    if not text:
        raise StepFailed(N_("The message is empty once its variables are filled in."))
    conversation = ctx.conversation
    if (
        step.template is not None
        and conversation is not None
        and not _window_open(conversation, ctx)
    ):
        # Outside the 24-hour window only a template may go: the step's fallback.
        message = _queue(ctx, run, "template", _template_content(ctx, step))
        return Outcome(
            next=step.next,
            detail=N_("The 24-hour window was closed: the template went instead."),
            message_id=message.id,
        )
    message = _queue(ctx, run, "text", {"body": text})
    return Outcome(
        next=step.next, detail="%(text)s", params={"text": text[:200]}, message_id=message.id
    )


def _window_open(conversation: Any, ctx: RunContext) -> bool:
    expires = conversation.window_expires_at
    return expires is not None and expires > ctx.now


def _send_template(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    message = _queue(ctx, run, "template", _template_content(ctx, step))
    assert step.template is not None
    return Outcome(
        next=step.next,
        detail=N_("Template %(name)s"),
        params={"name": step.template.name},
        message_id=message.id,
    )


def _template_content(ctx: RunContext, step: Step) -> dict[str, Any]:
    ref = step.template
    if ref is None:
        raise StepFailed(N_("No template is chosen."))
    template = ctx.session.scalar(
        select(MessageTemplate)
        .where(
            MessageTemplate.workspace_id == ctx.workspace_id,
            MessageTemplate.name == ref.name,
            MessageTemplate.language == ref.language,
            MessageTemplate.status == "APPROVED",
        )
        .limit(1)
    )
    if template is None:
        raise StepFailed(
            N_("The template “%(name)s” (%(language)s) is not approved."),
            name=ref.name,
            language=ref.language,
        )
    targets = template_targets(template.components)
    values: dict[str, str] = {}
    for target in targets:
        value = ctx.render(ref.variables.get(target, ""))
        if not value:
            raise StepFailed(N_("The template needs a value for %(target)s."), target=target)
        values[target] = value
    wire: dict[str, Any] = {"name": ref.name, "language": {"code": ref.language}}
    components = build_components(template.components, template.parameter_format == "named", values)
    if components:
        wire["components"] = components
    return wire


# A question: sent, then the run waits in ASKING; the customer's message (or the
# time-out) brings it back to the same step with `variables["reply"]` (or without).


def _question(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    state = run.variables.get("at")
    if isinstance(state, dict) and state.get("step") == step.id:
        reply = run.variables.get("reply")
        if reply is None:  # the time-out came first
            _forget_step_state(run)
            if step.on_timeout:
                return Outcome(
                    next=step.on_timeout, detail=N_("No answer in time."), status="timeout"
                )
            return Outcome(
                next=None, detail=N_("No answer in time: the run ends."), status="timeout"
            )
        option = _matching_option(step, reply)
        if option is not None:
            answers = dict(run.variables.get("answers") or {})
            answers[step.id] = option.title
            _forget_step_state(run)
            _set_vars(run, answers=answers)
            if step.save_as and ctx.contact is not None:
                contacts.do_update_contact(
                    ctx.session, ctx.contact, custom_fields={step.save_as: option.title}
                )
            return Outcome(
                next=option.next or step.next,
                detail=N_("Answered “%(answer)s”."),
                params={"answer": option.title},
            )
        if not state.get("retried") and step.retry_text.strip():
            _set_vars(run, reply=None, at={"step": step.id, "retried": True})
            message = _queue(ctx, run, "interactive", _interactive(ctx, step, step.retry_text))
            return Outcome(
                stop=RunStatus.ASKING.value,
                wake_at=_timeout(ctx, step),
                detail=N_("“%(text)s” is not an option: asked again."),
                params={"text": str(reply.get("text", ""))[:80]},
                message_id=message.id,
                status="waiting",
            )
        _forget_step_state(run)
        if step.on_invalid:
            return Outcome(next=step.on_invalid, detail=N_("No valid answer."), status="invalid")
        return Outcome(next=None, detail=N_("No valid answer: the run ends."), status="invalid")
    message = _queue(ctx, run, "interactive", _interactive(ctx, step, step.text))
    _set_vars(run, at={"step": step.id, "retried": False}, reply=None)
    return Outcome(
        stop=RunStatus.ASKING.value,
        wake_at=_timeout(ctx, step),
        detail="%(text)s",
        params={"text": ctx.render(step.text)[:200]},
        message_id=message.id,
        status="waiting",
    )


def _timeout(ctx: RunContext, step: Step) -> dt.datetime | None:
    if step.timeout_minutes is None:
        return None
    return ctx.now + dt.timedelta(minutes=step.timeout_minutes)


def _interactive(ctx: RunContext, step: Step, text: str) -> dict[str, Any]:
    body = ctx.render(text) or ctx.render(step.text)
    if len(step.options) <= 3:
        return {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": o.id, "title": o.title}} for o in step.options
                ]
            },
        }
    return {
        "type": "list",
        "body": {"text": body},
        "action": {
            "button": step.list_button or "Options",
            "sections": [
                {
                    "title": (step.title or "Options")[:24],
                    "rows": [{"id": o.id, "title": o.title} for o in step.options],
                }
            ],
        },
    }


def _matching_option(step: Step, reply: dict[str, Any]) -> Any:
    """The option the customer chose: the button or list row they tapped, its text typed,
    or its number ("2")."""
    chosen_id = reply.get("id")
    if chosen_id:
        for option in step.options:
            if option.id == chosen_id:
                return option
    said = fold(str(reply.get("text") or "")).strip(".!¡?¿ ")
    if not said:
        return None
    for index, option in enumerate(step.options, start=1):
        if said in (fold(option.title), str(index), fold(option.id)):
            return option
    return None


def _assign(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    conversation = _conversation(ctx)
    actor = actor_for(run.workspace_id)
    try:
        if step.agent_id is not None:
            collab.do_assign(
                ctx.session, actor, conversation, assignee_id=step.agent_id, team_id=step.team_id
            )
            return Outcome(
                next=step.next,
                detail=N_("Assigned to %(name)s."),
                params={"name": ctx.value("agent.name") or step.agent_id},
            )
        if conversation.team_id == step.team_id and conversation.assignee_id is not None:
            # Routing gave it to one of the team already: nothing to hand over.
            return Outcome(
                next=step.next,
                detail=N_("Already with %(name)s."),
                params={"name": ctx.value("agent.name")},
            )
        # A team: the conversation joins its queue, and routing picks an available agent
        # by the team's strategy (now, or when one frees up or comes online).
        collab.do_assign(ctx.session, actor, conversation, assignee_id=None, team_id=step.team_id)
    except PuenteError as exc:
        raise StepFailed.of_error(exc) from None
    ROUTING.wake_after_commit(ctx.session)
    team = ctx.session.get(Team, step.team_id) if step.team_id is not None else None
    return Outcome(
        next=step.next,
        detail=N_("In the queue of the team %(team)s."),
        params={"team": team.name if team is not None else step.team_id},
    )


def _unassign(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    conversation = _conversation(ctx)
    collab.do_assign(ctx.session, actor_for(run.workspace_id), conversation, assignee_id=None)
    return Outcome(next=step.next)


def _add_tag(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    contact = _contact(ctx)
    tag = ctx.render(step.tag or "")
    try:
        contacts.do_add_tags(ctx.session, contact, [tag])
    except PuenteError as exc:
        raise StepFailed.of_error(exc) from None
    return Outcome(next=step.next, detail="%(text)s", params={"text": tag})


def _remove_tag(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    contact = _contact(ctx)
    tag = ctx.render(step.tag or "")
    contacts.do_remove_tag(ctx.session, contact, tag)
    return Outcome(next=step.next, detail="%(text)s", params={"text": tag})


def _set_field(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    contact = _contact(ctx)
    value = ctx.render(step.value)
    try:
        contacts.do_update_contact(
            ctx.session, contact, custom_fields={step.field or "": value or None}
        )
    except PuenteError as exc:
        raise StepFailed.of_error(exc) from None
    return Outcome(
        next=step.next,
        detail="%(field)s = %(value)s",
        params={"field": step.field, "value": value[:200]},
    )


def _note(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    conversation = _conversation(ctx)
    try:
        collab.do_add_note(
            ctx.session, actor_for(run.workspace_id), conversation, ctx.render(step.text)
        )
    except PuenteError as exc:
        raise StepFailed.of_error(exc) from None
    return Outcome(next=step.next)


def _close(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    conversation = _conversation(ctx)
    if conversation.status == ConversationStatus.RESOLVED.value:
        return Outcome(next=step.next, detail=N_("It was closed already."))
    collab.do_close(ctx.session, actor_for(run.workspace_id), conversation)
    return Outcome(next=step.next)


def _reopen(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    conversation = _conversation(ctx)
    if conversation.status == ConversationStatus.OPEN.value:
        return Outcome(next=step.next, detail=N_("It was open already."))
    collab.do_reopen(ctx.session, actor_for(run.workspace_id), conversation)
    return Outcome(next=step.next)


def _snooze(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    conversation = _conversation(ctx)
    until = ctx.now + dt.timedelta(minutes=step.minutes or 60)
    collab.do_snooze(
        ctx.session, actor_for(run.workspace_id), conversation, until=until, now=ctx.now
    )
    return Outcome(
        next=step.next,
        detail=N_("Until %(time)s."),
        params={"time": until.isoformat(timespec="minutes")},
    )


def _bot(paused: bool) -> Callable[[RunContext, WorkflowRun, Step], Outcome]:
    def take(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
        conversation = _conversation(ctx)
        collab.do_set_bot_paused(
            ctx.session, actor_for(run.workspace_id), conversation, paused=paused
        )
        # The run's own pause does not stop the run itself.
        _set_vars(run, bot_off_by_run=True if paused else None)
        return Outcome(next=step.next)

    return take


def _wait(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    if step.minutes is not None:
        until = ctx.now + dt.timedelta(minutes=step.minutes)
    elif step.seconds is not None:
        until = ctx.now + dt.timedelta(seconds=step.seconds)
    else:
        until = next_time_of_day(step.until or "00:00", ctx.time_zone(), ctx.now)
    return Outcome(
        next=step.next,
        stop=RunStatus.WAITING.value,
        wake_at=until,
        detail=N_("Until %(time)s."),
        params={"time": until.isoformat(timespec="minutes")},
        status="waiting",
    )


def next_time_of_day(hhmm: str, time_zone: str, now: dt.datetime) -> dt.datetime:
    """The next moment the wall clock of `time_zone` reads `hhmm` (today or tomorrow)."""
    try:
        zone = ZoneInfo(time_zone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in hhmm.split(":"))
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + dt.timedelta(days=1)).replace(
            hour=hour, minute=minute, second=0, microsecond=0
        )
    return candidate.astimezone(dt.UTC)


def _branch(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    if ctx.holds(step.conditions):
        return Outcome(next=step.next, detail=N_("The conditions held."))
    return Outcome(next=step.otherwise, detail=N_("The conditions did not hold."))


def _jump(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    return Outcome(next=step.target)


def _end(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    return Outcome(next=None)


def _http(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    state = run.variables.get("at")
    response = run.variables.get("response")
    if isinstance(state, dict) and state.get("step") == step.id and isinstance(response, dict):
        _forget_step_state(run)
        if response.get("ok"):
            results = dict(run.variables.get("http") or {})
            results[step.id] = response.get("data")
            _set_vars(run, http=results)
            return Outcome(
                next=step.next,
                detail=N_("Answered %(status)s."),
                params={"status": response.get("status")},
            )
        error = response.get("error")
        if isinstance(error, dict) and isinstance(error.get("template"), str):
            raise StepFailed(error["template"], **(error.get("params") or {}))
        raise StepFailed(N_("The call failed."))
    headers = {k: ctx.render(v) for k, v in step.headers.items()}
    call = {
        "method": step.method,
        "url": ctx.render(step.url),
        "headers": headers,
        "body": ctx.render_data(step.body) if step.body is not None else None,
        "timeout": step.timeout_seconds,
        "allow_private": _allows_private(ctx),
    }
    _set_vars(run, at={"step": step.id}, call=call, response=None)
    return Outcome(
        stop=RunStatus.READY.value,
        wake_at=ctx.now + dt.timedelta(seconds=step.timeout_seconds) + CALL_LEASE,
        detail="%(method)s %(url)s",
        params={"method": step.method, "url": str(call["url"])[:200]},
        status="calling",
    )


def _allows_private(ctx: RunContext) -> bool:
    workspace = ctx.workspace()
    settings = (workspace.settings or {}) if workspace is not None else {}
    return bool(settings.get("workflows_allow_private_http"))


def _start_workflow(ctx: RunContext, run: WorkflowRun, step: Step) -> Outcome:
    from puente.automation.workflows.service import do_start_run

    depth = int(run.variables.get("depth") or 0)
    if depth >= MAX_DEPTH:
        raise StepFailed(
            N_("Workflows started one another %(depth)s deep: stopped."), depth=MAX_DEPTH
        )
    other = ctx.session.scalar(
        select(Workflow).where(
            Workflow.id == step.workflow_id, Workflow.workspace_id == run.workspace_id
        )
    )
    if other is None:
        raise StepFailed(N_("The workflow to start was deleted."))
    if not other.enabled or other.published_version_id is None:
        raise StepFailed(N_("The workflow “%(name)s” is switched off."), name=other.name)
    started = do_start_run(
        ctx.session,
        other,
        trigger="workflow",
        trigger_key=f"run:{run.id}:{step.id}:{run.steps_taken}",
        contact_id=run.contact_id,
        conversation_id=run.conversation_id,
        variables={**(run.variables.get("vars") or {})},
    )
    if started is not None:
        _set_vars(started, depth=depth + 1)
    return Outcome(next=step.next, detail="%(text)s", params={"text": other.name})


_HANDLERS: dict[str, Callable[[RunContext, WorkflowRun, Step], Outcome]] = {
    "send_message": _send_message,
    "send_template": _send_template,
    "question": _question,
    "assign": _assign,
    "unassign": _unassign,
    "add_tag": _add_tag,
    "remove_tag": _remove_tag,
    "set_field": _set_field,
    "note": _note,
    "close": _close,
    "reopen": _reopen,
    "snooze": _snooze,
    "bot_off": _bot(True),
    "bot_on": _bot(False),
    "wait": _wait,
    "branch": _branch,
    "jump": _jump,
    "http": _http,
    "start_workflow": _start_workflow,
    "end": _end,
}
