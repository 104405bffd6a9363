"""The workflow worker, on the job module's WORKFLOWS queue: it claims runs whose time
has come (a new run, an answer, a timer, a question's time-out), takes their steps, and
makes HTTP steps' calls between transactions. A slower sweep starts the "no reply for N
minutes" workflows.

Runs are claimed and advanced in one transaction (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite's single writer otherwise): two workers never take the same run, and
a worker that dies leaves its runs exactly as they were before it claimed them. Each run
goes in a savepoint of its own, scoped to its workspace, so one run's unexpected error
fails that run and not the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.automation.workflows.engine import N_, advance, run_finished
from puente.automation.workflows.http_call import perform
from puente.automation.workflows.models import ACTIVE, RunStatus, WorkflowRun, WorkflowVersion
from puente.automation.workflows.triggers import (
    INDEX,
    start_no_reply_runs,
    workspaces_with_no_reply,
)
from puente.contacts.models import Contact
from puente.contacts.service import cached_tags
from puente.conversations.models import Conversation
from puente.db.base import utcnow
from puente.db.scope import Unscoped, set_scope
from puente.db.session import Database, on_commit
from puente.events import publish
from puente.jobs import WORKFLOWS, Worker, skip_locked
from puente.jobs import install as install_worker
from puente.runtime import BackgroundWorker, Runtime

log = logging.getLogger(__name__)

BATCH = 100
POLL_FACTOR = 1  # timers are due without anybody announcing them: poll at the base pace
SWEEP_SECONDS = 30.0
_CLAIM = Unscoped("the workflow worker takes the due runs of every workspace")


def _pending_call(run: WorkflowRun) -> dict[str, Any] | None:
    call = run.variables.get("call")
    waiting = run.status == RunStatus.READY.value and run.variables.get("response") is None
    return call if waiting and isinstance(call, dict) else None


class _BatchFailed(Exception):
    """A run of the batch raised: the batch is rolled back and taken again run by run."""


def run_step(db: Database, now: dt.datetime | None = None) -> bool:
    """One batch of due runs; True when there was any (so the worker goes again).

    The batch is taken in one transaction without a savepoint per run: each savepoint
    costs statements and a flush, which held 10,000 timers to half the rate they come
    due. Should a run raise, the whole batch rolls back (nothing of it is kept) and is
    taken again with a savepoint per run, so that only that run fails."""
    now = now or utcnow()
    try:
        return _run_batch(db, now, careful=False)
    except _BatchFailed:
        return _run_batch(db, now, careful=True)


def _run_batch(db: Database, now: dt.datetime, *, careful: bool) -> bool:
    calls: list[tuple[int, int, dict[str, Any]]] = []
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        runs = session.scalars(
            skip_locked(
                session,
                select(WorkflowRun)
                .where(WorkflowRun.status.in_(ACTIVE), WorkflowRun.wake_at <= now)
                .order_by(WorkflowRun.wake_at, WorkflowRun.id)
                .limit(BATCH),
            )
        ).all()
        # What the runs' steps read, in three statements for the batch: later look-ups
        # find them in the session (held here, as the session keeps them weakly).
        loaded = _preload(session, runs)
        asking: set[int] = set()
        for run in runs:
            call = _pending_call(run)
            if call is None:
                if careful:
                    _advance_carefully(session, run, now)
                else:
                    _advance_fast(session, run, now)
                call = _pending_call(run)
            else:
                # A call that a dead worker left unanswered: made again, after a lease.
                run.wake_at = now + dt.timedelta(seconds=float(call.get("timeout") or 10) + 30)
            if call is not None:
                calls.append((run.id, run.steps_taken, call))
            if run.status == RunStatus.ASKING.value:
                asking.add(run.workspace_id)
        for workspace_id in asking:
            on_commit(session, lambda ws=workspace_id: INDEX.forget(ws))  # type: ignore[misc]
        del loaded
    for run_id, steps_taken, call in calls:
        response = perform(call)
        _resume_after_call(db, run_id, steps_taken, call, response)
    return bool(runs)


def _preload(session: Session, runs: Sequence[WorkflowRun]) -> list[Any]:
    held: list[Any] = []
    contacts = [r.contact_id for r in runs if r.contact_id]
    if contacts:
        cached_tags(session, contacts[0], contacts)
    for model, ids in (
        (WorkflowVersion, {r.version_id for r in runs}),
        (Contact, {r.contact_id for r in runs if r.contact_id}),
        (Conversation, {r.conversation_id for r in runs if r.conversation_id}),
    ):
        if ids:
            held += session.scalars(select(model).where(model.id.in_(ids))).all()
    return held


def _advance_fast(session: Session, run: WorkflowRun, now: dt.datetime) -> None:
    set_scope(session, run.workspace_id)
    try:
        advance(session, run, now)
    except Exception as exc:
        log.warning("workflow run %s raised; the batch is taken again run by run", run.id)
        raise _BatchFailed from exc
    finally:
        set_scope(session, _CLAIM)


def _advance_carefully(session: Session, run: WorkflowRun, now: dt.datetime) -> None:
    set_scope(session, run.workspace_id)
    try:
        with session.begin_nested():
            advance(session, run, now)
    except Exception:
        log.exception("workflow run %s failed unexpectedly", run.id)
        # The savepoint rolled back the step's effects; the run records why it stopped.
        session.refresh(run)
        run.status = RunStatus.FAILED.value
        run.error = N_("Puente met an unexpected error at this step (see the server log).")
        run.error_params = None
        run.wake_at = None
        run.finished_at = now
        publish(session, run_finished(run))
    finally:
        set_scope(session, _CLAIM)


def _resume_after_call(
    db: Database, run_id: int, steps_taken: int, call: dict[str, Any], response: dict[str, Any]
) -> None:
    """Record the call's response and go on, unless the run moved meanwhile (switched
    off, or another worker took it up after this one's lease ran out)."""
    with db.unit_of_work(unscoped=_CLAIM.reason) as session:
        run = session.scalar(
            skip_locked(session, select(WorkflowRun).where(WorkflowRun.id == run_id))
        )
        if run is None or run.steps_taken != steps_taken or run.variables.get("call") != call:
            return
        if run.status != RunStatus.READY.value or run.variables.get("response") is not None:
            return
        variables = dict(run.variables)
        variables["response"] = response
        run.variables = variables
        _advance_carefully(session, run, utcnow())


def sweep_step(db: Database, now: dt.datetime | None = None) -> int:
    """Start the no-reply workflows that are due; returns how many runs started."""
    now = now or utcnow()
    with db.read(unscoped="finding the workspaces with no-reply workflows") as session:
        workspaces = workspaces_with_no_reply(session)
    started = 0
    for workspace_id in workspaces:
        with db.unit_of_work(scope=workspace_id) as session:
            started += start_no_reply_runs(session, workspace_id, now)
    return started


def install(runtime: Runtime) -> Worker:
    db = runtime.db
    idle = runtime.settings.worker_poll_seconds * POLL_FACTOR
    worker = Worker("puente-workflows", WORKFLOWS, lambda: run_step(db), idle_seconds=idle)
    install_worker(runtime, worker)
    runtime.workers.append(
        BackgroundWorker("puente-workflow-sweep", lambda: sweep_step(db) > 0, SWEEP_SECONDS)
    )
    return worker
