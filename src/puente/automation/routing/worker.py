"""The routing worker (on the job module's ROUTING queue) and the availability sweep."""

from __future__ import annotations

import datetime as dt
import logging

from puente.accounts.presence import do_sweep_presence, presence_due
from puente.automation.routing.assign import assignable_workspaces, do_route_workspace
from puente.db.base import utcnow
from puente.db.session import Database
from puente.jobs import ROUTING, Worker
from puente.jobs import install as install_worker
from puente.runtime import BackgroundWorker, Runtime

log = logging.getLogger(__name__)

# Changes that free an agent or fill a queue wake the worker (after commit, and by NOTIFY
# in other processes); this slower poll only catches what nothing announces, such as a
# member added to a team.
POLL_FACTOR = 10
SWEEP_SECONDS = 15.0


def route_step(db: Database) -> bool:
    """One pass over the workspaces whose queues can move; True when it assigned any."""
    with db.read(unscoped="routing looks at every workspace's team queues") as session:
        workspaces = assignable_workspaces(session)
    assigned = 0
    for workspace_id in workspaces:
        with db.unit_of_work(scope=workspace_id) as session:
            assigned += do_route_workspace(session, workspace_id)
    return assigned > 0


def sweep_step(db: Database, now: dt.datetime | None = None) -> int:
    """Turn away the idle and offline those whose tabs closed; returns how many changed."""
    now = now or utcnow()
    with db.read(unscoped="availability belongs to the person, across workspaces") as session:
        due = presence_due(session, now)
    if not due:
        return 0
    with db.unit_of_work(unscoped="availability belongs to the person, across workspaces") as s:
        return do_sweep_presence(s, now, [user_id for user_id, _ in due])


def install(runtime: Runtime) -> Worker:
    """Register the routing worker and the availability sweep with the process's workers."""
    db = runtime.db
    idle = runtime.settings.worker_poll_seconds * POLL_FACTOR
    worker = Worker("puente-routing", ROUTING, lambda: route_step(db), idle_seconds=idle)
    install_worker(runtime, worker)
    # The sweep only compares times, so a fixed pace is enough: a tab closed shows as
    # offline within OFFLINE_AFTER plus this.
    runtime.workers.append(
        BackgroundWorker("puente-presence", lambda: sweep_step(db) > 0, SWEEP_SECONDS)
    )
    return worker
