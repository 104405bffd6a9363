"""What /readyz checks: the database answers, its schema is current, and every running
background worker on this machine (in this process or in a `puente worker` beside it,
seen through the metrics files) went round its loop recently."""

from __future__ import annotations

import time

from puente import metrics
from puente.db.schema import readiness_problem
from puente.runtime import Runtime


def failing_checks(runtime: Runtime, now: float | None = None) -> dict[str, str]:
    """The checks that fail, by name, each with the reason; empty when ready."""
    failing: dict[str, str] = {}
    problem = readiness_problem(runtime.db)
    if problem is not None:
        failing["database"] = problem
    stale = stale_workers(runtime.settings.worker_stale_seconds, now)
    if stale:
        failing["workers"] = "; ".join(stale)
    return failing


def stale_workers(bound: float, now: float | None = None) -> list[str]:
    """Workers whose last heartbeat is older than `bound` seconds (0: none checked)."""
    if bound <= 0:
        return []
    now = time.time() if now is None else now
    return [
        f"worker {beat.worker} (pid {beat.pid}) last went round its loop "
        f"{now - beat.at:.0f} s ago (more than {bound:g} s)"
        for beat in sorted(metrics.heartbeats(), key=lambda b: (b.worker, b.pid))
        if now - beat.at > bound
    ]
