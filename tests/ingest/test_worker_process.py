"""`puente worker`: processing in its own process, woken across processes on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from puente.config import Settings
from puente.db.session import Database
from puente.ingest.models import EventState
from tests.ingest.conftest import stored_events
from tests.ingest.helpers import signed


def test_worker_command_processes_what_the_web_process_stored(
    settings: Settings, db: Database, client: httpx.Client
) -> None:
    env = dict(
        os.environ,
        PUENTE_DATA_DIR=str(settings.data_dir),
        PUENTE_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        # On PostgreSQL only NOTIFY can wake it this quickly; SQLite polls.
        PUENTE_WORKER_POLL_SECONDS="60" if db.is_postgres else "0.1",
    )
    if settings.database_url:
        env["PUENTE_DATABASE_URL"] = settings.database_url
    puente = Path(sys.executable).parent / "puente"
    worker = subprocess.Popen(
        [str(puente), "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        # Once started: the listener wakes the worker after LISTEN, so nothing sent in
        # between is missed.
        assert "running" in worker.stdout.readline()
        body = b"{not json"
        assert (
            client.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200
        )
        deadline = time.monotonic() + 30
        while stored_events(db)[0].state == EventState.NEW and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored_events(db)[0].state == EventState.FAILED
    finally:
        worker.send_signal(signal.SIGINT)
        _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
