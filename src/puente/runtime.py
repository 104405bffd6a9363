"""The objects one Puente process shares: settings, database, secret box, workers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Every table, registered before any session flushes: SQLAlchemy finds a foreign key's
# table by name then, and a command line imports only its own domain's modules.
import puente.db.models  # noqa: F401
from puente import metrics
from puente.config import Settings, get_settings
from puente.db.session import Database
from puente.secrets import SecretBox, audit_keys, secret_box

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    secrets: SecretBox
    # Background loops started with the web process (or by `puente worker`).
    workers: list[BackgroundWorker] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, db: Database | None = None) -> Runtime:
        settings = settings or get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Before any metric is counted: every process of this data directory writes its
        # metrics files there, and GET /metrics sums them.
        metrics.use_directory(settings.data_dir / "metrics")
        db = db or Database(settings.sqlalchemy_url())
        db.use_audit_keys(audit_keys(settings))
        return cls(settings=settings, db=db, secrets=secret_box(settings))

    def start_workers(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join()


class BackgroundWorker:
    """A thread that calls `step` until stopped. `step` returns True when it did work,
    so an idle loop waits `idle_seconds` (or until woken) before polling again."""

    def __init__(self, name: str, step: Callable[[], bool], idle_seconds: float = 0.5) -> None:
        self.name = name
        self._step = step
        self._idle = idle_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._beaten = -1.0e9

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float = 10) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            # Stopped on purpose: no heartbeat is expected from it any more.
            metrics.beat_stopped(self.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            try:
                did_work = self._step()
            except Exception:
                log.exception("worker %s step failed", self.name)
                did_work = False
            if not did_work:
                self._wake.wait(self._idle)
                self._wake.clear()

    def beat(self) -> None:
        """Tell /metrics and /readyz this loop still goes round (at most once a second:
        each heartbeat is a write to the metrics file)."""
        now = time.monotonic()
        if now - self._beaten >= 1.0:
            self._beaten = now
            metrics.beat(self.name)
