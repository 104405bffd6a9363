"""GET /metrics over HTTP: a customer's message posted by the sandbox moves the webhook
counters, the request is timed under its route template, the token is asked for when
one is set, and a second process's counters and heartbeats are summed in one scrape."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from puente import metrics
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.models import WebhookEvent
from puente.ingest.worker import run_until_idle
from puente.operations.exposition import Exposition
from puente.sandbox.seed import DEMO_NUMBER
from tests.operations.conftest import Stage, samples, value
from tests.waiting import wait_until

LUCIA = "573001112233"


def _stored(db: Database) -> int:
    with db.read(unscoped="test") as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def test_a_customer_message_from_the_sandbox_moves_the_webhook_counters(stage: Stage) -> None:
    before = samples(stage.puente.get("/metrics").text)
    answer = stage.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound", json={"from": LUCIA, "text": "¿Tienen envío?"}
    )
    assert answer.status_code == 201, answer.text
    wait_until(lambda: _stored(stage.runtime.db) == 1, seconds=30, what="the webhook stored")
    pending = samples(stage.puente.get("/metrics").text)
    assert value(pending, "puente_webhook_events_pending") == 1
    run_until_idle(stage.runtime)

    page = stage.puente.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = samples(page.text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("puente_webhooks_received_total") == 1
    assert moved("puente_webhooks_stored_total") == 1
    processed = sum(
        moved("puente_webhooks_processed_total", state=state)
        for state in ("done", "partial", "failed")
    )
    assert processed == 1
    assert moved("puente_webhook_processing_lag_seconds_count") == 1
    assert value(after, "puente_webhook_events_pending") == 0
    assert value(after, "puente_database_up") == 1
    # Timed under the route's template, never the raw path.
    webhook = {"method": "POST", "route": "/webhooks/whatsapp"}
    assert moved("puente_http_requests_total", **webhook, status="200") == 1
    # Each request to the route is timed (the sandbox's verification GET included).
    to_the_route = sum(
        moved(name, **dict(labels))
        for name, labels in after
        if name == "puente_http_requests_total" and ("route", "/webhooks/whatsapp") in labels
    )
    timed = moved("puente_http_request_duration_seconds_count", route="/webhooks/whatsapp")
    assert timed == to_the_route >= 1


def test_route_templates_label_requests_whatever_ids_their_paths_carry(stage: Stage) -> None:
    for conversation in (101, 202):
        stage.puente.get(f"/api/v1/conversations/{conversation}")
    found = samples(stage.puente.get("/metrics").text)
    routes = {
        dict(labels)["route"] for name, labels in found if name == "puente_http_requests_total"
    }
    assert "/api/v1/conversations/{conversation_id}" in routes
    assert not any("101" in route or "202" in route for route in routes)
    stage.puente.get("/no/such/page/9")
    found = samples(stage.puente.get("/metrics").text)
    assert (
        value(found, "puente_http_requests_total", method="GET", route="<unmatched>", status="404")
        >= 1
    )


def test_metrics_ask_for_the_token_when_one_is_set(settings: Settings, db: Database) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    with TestClient(create_app(guarded, db, run_workers=False)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        page = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert page.status_code == 200 and "puente_webhooks_received_total" in page.text


# A second process writing to the same metrics directory, as `puente worker` does: it
# counts, beats (10 minutes ago, then now, as told on stdin) and stays alive until told.
OTHER_PROCESS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from puente import metrics
    metrics.use_directory(Path(sys.argv[1]))
    metrics.get().webhooks_received.inc(5)
    metrics.beat("puente-elsewhere", at=time.time() - 600)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "beat":
            metrics.beat("puente-elsewhere")
            print("beaten", flush=True)
    """
)


def test_a_second_process_is_summed_in_one_scrape_and_its_stale_worker_fails_readyz(
    settings: Settings, db: Database
) -> None:
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        before = samples(client.get("/metrics").text)
        assert client.get("/readyz").status_code == 200
        other = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, str(metrics.directory())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        try:
            assert other.stdout is not None and other.stdin is not None
            assert other.stdout.readline().strip() == "ready"
            client.get("/healthz")  # and one request of this process's own
            after = samples(client.get("/metrics").text)
            received = "puente_webhooks_received_total"
            assert value(after, received) - value(before, received) == 5
            assert (
                value(
                    after,
                    "puente_http_requests_total",
                    method="GET",
                    route="/healthz",
                    status="200",
                )
                >= 1
            )

            stale = client.get("/readyz")
            assert stale.status_code == 503
            failing = stale.json()["failing"]
            assert list(failing) == ["workers"]
            assert f"puente-elsewhere (pid {other.pid})" in failing["workers"]

            other.stdin.write("beat\n")
            other.stdin.flush()
            assert other.stdout.readline().strip() == "beaten"
            assert client.get("/readyz").json() == {"status": "ready"}
            heartbeat = samples(client.get("/metrics").text)
            assert (
                value(
                    heartbeat,
                    "puente_worker_heartbeat_timestamp_seconds",
                    worker="puente-elsewhere",
                )
                > 0
            )
        finally:
            other.kill()
            other.wait(30)
        # A process that is gone no longer counts for readiness.
        assert client.get("/readyz").status_code == 200


def test_the_page_says_what_prometheus_client_s_own_collector_says(
    settings: Settings, db: Database
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    with TestClient(create_app(settings, db, run_workers=False)) as client:
        client.get("/healthz")
    found = metrics.get()
    found.outbox_sent.labels(channel=metrics.channel_label(7)).inc(3)
    found.webhook_lag.observe(0.3)
    metrics.beat("puente-compared")
    try:
        # Both read one copy of the files: in a whole test run, other tests' workers still
        # write theirs (heartbeats) while the two pages are made.
        snapshot = settings.data_dir / "metrics-snapshot"
        shutil.copytree(metrics.directory(), snapshot)
        ours = samples(Exposition(snapshot).render())
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(snapshot))  # type: ignore[no-untyped-call]
        theirs = samples(generate_latest(registry).decode())
    finally:
        metrics.beat_stopped("puente-compared")
    assert value(theirs, "puente_outbox_sent_total", channel="7") >= 3
    assert value(theirs, "puente_worker_heartbeat_timestamp_seconds", worker="puente-compared")
    # The same series with the same values; sums of many floats may differ in their last
    # digit with the order the files are added in.
    assert ours.keys() == theirs.keys()
    assert ours == {key: pytest.approx(value, rel=1e-12) for key, value in theirs.items()}
