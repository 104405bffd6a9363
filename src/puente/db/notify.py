"""Cross-process wake-ups on PostgreSQL: a worker that LISTENs on a channel and wakes
another worker of this process on each NOTIFY. Polling remains the fallback."""

from __future__ import annotations

import logging
from typing import Any

from puente.runtime import BackgroundWorker, Runtime

log = logging.getLogger(__name__)


class NotifyListener(BackgroundWorker):
    """Wakes `target` whenever another process sends `NOTIFY <channel>`."""

    def __init__(self, runtime: Runtime, target: BackgroundWorker, channel: str) -> None:
        super().__init__(f"listen-{channel}", self._listen, runtime.settings.worker_poll_seconds)
        self._url = runtime.db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._channel = channel
        self._target = target
        self._conn: Any = None

    def _listen(self) -> bool:
        import psycopg

        try:
            if self._conn is None:
                self._conn = psycopg.connect(self._url, autocommit=True)
                self._conn.execute(f"LISTEN {self._channel}")
                self._target.wake()  # anything sent while we were not listening
            for _note in self._conn.notifies(timeout=1.0, stop_after=1):
                self._target.wake()
        except psycopg.Error:
            log.warning("lost the LISTEN %s connection; polling until it is back", self._channel)
            self._close()
            return False
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection may fail to close; nothing to keep
                log.debug("closing the LISTEN %s connection failed", self._channel, exc_info=True)

    def join(self, timeout: float = 10) -> None:
        super().join(timeout)
        self._close()
