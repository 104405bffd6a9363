"""Puente's Prometheus metrics, shared by every web and worker process of one machine.

prometheus_client's multi-process mode: each process writes its values into memory-mapped
files of one directory (PROMETHEUS_MULTIPROC_DIR, or `<data dir>/metrics` when not given,
chosen by the first Runtime of the process) and `GET /metrics` sums them. The metrics are
built on first use, after that directory is chosen, because the library picks its value
class when it is imported and opens its files when a value is first made.

Increments go where things happen, counted after commit when a transaction decides them
(`count_on_commit`), and once per batch (`inc(n)`) on bulk paths.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from sqlalchemy.orm import Session

ENV = "PROMETHEUS_MULTIPROC_DIR"
HEARTBEAT = "puente_worker_heartbeat_timestamp_seconds"
# One label value per number (a channel's id): bounded by the numbers an installation
# has, and cut off past this many in one process so a bug cannot flood the scrape.
MAX_CHANNEL_LABELS = 2000
OTHER = "other"

_lock = threading.RLock()
_directory: Path | None = None
_metrics: Metrics | None = None
_channels: set[str] = set()
_FILE_PID = re.compile(r"_(\d+)\.db$")


class _Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


@dataclass(frozen=True)
class Metrics:
    # Inbound webhooks: received by the endpoint, refused, stored (acknowledged),
    # processed by a worker (by the event's resulting state), and how long they waited.
    webhooks_received: Counter
    webhooks_refused: Counter
    webhooks_stored: Counter
    webhooks_processed: Counter
    webhook_lag: Histogram
    # The outbox, per number (label `channel`: the channel's id).
    outbox_queued: Counter
    outbox_sent: Counter
    outbox_failed: Counter
    # What Meta answered to sends.
    meta_errors: Counter
    meta_throttled: Counter
    broadcast_recipients: Counter
    workflow_runs: Counter
    # Outgoing webhooks (integrations): each attempt, and the failed ones by kind.
    outgoing_deliveries: Counter
    outgoing_failures: Counter
    worker_heartbeat: Gauge
    http_requests: Counter
    http_latency: Histogram


def use_directory(default: Path) -> Path:
    """Choose this process's metrics directory: PROMETHEUS_MULTIPROC_DIR when given,
    else `default`. The first call in a process decides; later ones return its choice.

    Files of processes that are gone are cleaned here: when no other process is alive
    the directory is emptied (the library's advice between runs: every counter starts
    again, which Prometheus reads as a restart), otherwise only the dead processes'
    live gauges (their heartbeats) are removed, as `mark_process_dead` does."""
    global _directory
    with _lock:
        if _directory is not None:
            return _directory
        given = os.environ.get(ENV)
        path = Path(given) if given else default
        path.mkdir(parents=True, exist_ok=True)
        # Set before prometheus_client is imported: it reads the variable then.
        os.environ[ENV] = str(path)
        _clean(path)
        _directory = path
        atexit.register(_mark_dead, os.getpid(), path)
        return path


def directory() -> Path:
    """The metrics directory; a temporary one if no Runtime chose it (a script)."""
    with _lock:
        if _directory is None:
            return use_directory(Path(tempfile.mkdtemp(prefix="puente-metrics-")))
        return _directory


def get() -> Metrics:
    """The process's metrics, built on first use."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                directory()
                _metrics = _build()
    return _metrics


def count_on_commit(session: Session, metric: _Incrementable, amount: float = 1) -> None:
    """Count `amount` once the session's transaction commits (never for a rollback)."""
    from puente.db.session import on_commit

    if amount:
        on_commit(session, lambda: metric.inc(amount))


def channel_label(channel_id: int | str | None) -> str:
    """A number's label value: its channel id, or "other" past MAX_CHANNEL_LABELS."""
    value = OTHER if channel_id is None else str(channel_id)
    if value in _channels:
        return value
    with _lock:
        if len(_channels) >= MAX_CHANNEL_LABELS:
            return OTHER
        _channels.add(value)
    return value


def beat(worker: str, at: float | None = None) -> None:
    """Record that `worker` is alive (now, or at `at`, seconds since the epoch)."""
    get().worker_heartbeat.labels(worker=worker).set(time.time() if at is None else at)


def beat_stopped(worker: str) -> None:
    """A worker stopped on purpose: its heartbeat is no longer expected (0)."""
    get().worker_heartbeat.labels(worker=worker).set(0)


@dataclass(frozen=True)
class Heartbeat:
    pid: int
    worker: str
    at: float  # seconds since the epoch


def heartbeats() -> list[Heartbeat]:
    """The last heartbeat of every running worker of every live process writing to this
    machine's metrics directory (the web process sees its worker processes here)."""
    from prometheus_client.mmap_dict import MmapedDict

    found: list[Heartbeat] = []
    for file in directory().glob("gauge_livemax_*.db"):
        pid = _pid_of(file)
        if pid is None or not _alive(pid):
            continue
        try:
            found_values = MmapedDict.read_all_values_from_file(str(file))  # type: ignore[no-untyped-call]
        except OSError:  # removed meanwhile: that process just ended
            continue
        for key, value, _timestamp, _pos in found_values:
            _metric, name, labels, _help = json.loads(key)
            if name == HEARTBEAT and value > 0:
                found.append(Heartbeat(pid, str(labels.get("worker", "")), float(value)))
    return found


def _build() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram, values

    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client was imported before the directory was chosen.
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    lag_buckets = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
    return Metrics(
        webhooks_received=Counter(
            "puente_webhooks_received", "Webhook POSTs that reached the endpoint."
        ),
        webhooks_refused=Counter(
            "puente_webhooks_refused",
            "Webhook requests refused (bad or missing signature, too large, not stored).",
            ["reason"],
        ),
        webhooks_stored=Counter(
            "puente_webhooks_stored", "Signed webhook bodies committed and acknowledged."
        ),
        webhooks_processed=Counter(
            "puente_webhooks_processed",
            "Stored webhook events processed, by the state they ended in "
            "(done, partial: some changes parked or failed, failed).",
            ["state"],
        ),
        webhook_lag=Histogram(
            "puente_webhook_processing_lag_seconds",
            "From a webhook event's storage to its processing.",
            buckets=lag_buckets,
        ),
        outbox_queued=Counter(
            "puente_outbox_queued", "Messages queued in the outbox, per number.", ["channel"]
        ),
        outbox_sent=Counter(
            "puente_outbox_sent", "Messages Meta accepted from the outbox, per number.", ["channel"]
        ),
        outbox_failed=Counter(
            "puente_outbox_failed", "Outbox messages that failed for good, per number.", ["channel"]
        ),
        meta_errors=Counter(
            "puente_meta_errors", "Errors the Graph API answered to sends, by code.", ["code"]
        ),
        meta_throttled=Counter(
            "puente_meta_throttled_130429",
            "Sends refused by Meta with 130429 (the number's throughput was exceeded).",
        ),
        broadcast_recipients=Counter(
            "puente_broadcast_recipients",
            "Broadcast recipients moved to a state (queued into the outbox, skipped).",
            ["state"],
        ),
        workflow_runs=Counter(
            "puente_workflow_runs_finished",
            "Workflow runs finished, by outcome (done, failed, stopped).",
            ["outcome"],
        ),
        outgoing_deliveries=Counter(
            "puente_outgoing_webhook_deliveries",
            "Attempts to deliver an outgoing webhook, by result (success, failure).",
            ["result"],
        ),
        outgoing_failures=Counter(
            "puente_outgoing_webhook_failures",
            "Failed outgoing webhook attempts, by kind (timeout, network, refused: a private "
            "address, redirect, http_4xx, http_5xx).",
            ["kind"],
        ),
        worker_heartbeat=Gauge(
            HEARTBEAT,
            "When each background worker last went round its loop (seconds since the epoch).",
            ["worker"],
            multiprocess_mode="livemax",
        ),
        http_requests=Counter(
            "puente_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
        ),
        # By route alone (the counter above has the method), with few buckets: a
        # histogram's series per route are most of what a scrape reads and writes.
        http_latency=Histogram(
            "puente_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=(0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        ),
    )


def _pid_of(file: Path) -> int | None:
    match = _FILE_PID.search(file.name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _clean(path: Path) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    files = list(path.glob("*.db"))
    pids = {pid for pid in map(_pid_of, files) if pid is not None}
    others_alive = any(_alive(pid) for pid in pids - {os.getpid()})
    if not others_alive:
        _remove(files)
        return
    for pid in pids:
        if not _alive(pid):
            mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def _remove(files: Iterable[Path]) -> None:
    for file in files:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()


def _mark_dead(pid: int, path: Path) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    if os.getpid() == pid:  # not in a forked child that inherited the hook
        with contextlib.suppress(OSError):
            mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def meta_error(code: int | None) -> None:
    """Meta answered a send with an error (code None: no answer came)."""
    found = get()
    found.meta_errors.labels(code="none" if code is None else str(code)).inc()
    if code == 130429:
        found.meta_throttled.inc()


def count_processed(session: Session, outcomes: list[tuple[str, dt.timedelta]]) -> None:
    """Webhook events processed in this transaction: (the state each ended in, how long
    after its storage), counted once it commits."""
    from puente.db.session import on_commit

    if not outcomes:
        return

    def count() -> None:
        found = get()
        for state, amount in collections.Counter(state for state, _ in outcomes).items():
            found.webhooks_processed.labels(state=state).inc(amount)
        for _state, lag in outcomes:
            found.webhook_lag.observe(max(lag.total_seconds(), 0.0))

    on_commit(session, count)


def count_deliveries(attempts: Iterable[tuple[bool, int | None, str | None]]) -> None:
    """Outgoing webhook attempts, each (ok, HTTP status or None, error or None)."""
    found = get()
    for ok, status, error in attempts:
        found.outgoing_deliveries.labels(result="success" if ok else "failure").inc()
        if not ok:
            found.outgoing_failures.labels(kind=_failure_kind(status, error)).inc()


def _failure_kind(status: int | None, error: str | None) -> str:
    if status is None:
        if error == "timeout":
            return "timeout"
        return "refused" if (error or "").startswith("refused") else "network"
    if status < 400:
        return "redirect"
    return "http_4xx" if status < 500 else "http_5xx"
