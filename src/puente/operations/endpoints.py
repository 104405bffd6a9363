"""GET /healthz (the process answers), /readyz (it can serve) and /metrics (Prometheus)."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from puente import metrics
from puente.db.base import utcnow
from puente.db.session import Database
from puente.ingest.models import EventState, WebhookEvent
from puente.operations.exposition import Exposition
from puente.operations.health import failing_checks
from puente.runtime import Runtime

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exporter:
    """Sums every process's metrics files, plus a few figures read from the database."""

    def __init__(self, db: Database) -> None:
        from prometheus_client import CollectorRegistry

        metrics.get()  # the directory chosen, before the files are looked for
        self.files = Exposition(metrics.directory())
        self.database = CollectorRegistry()
        self.database.register(QueueDepth(db))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return self.files.render().encode() + generate_latest(self.database)


class QueueDepth:
    """The inbound queue, from the database at each scrape: two look-ups on the
    (state, id) index of webhook events. The same figure on every machine."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            pending, oldest = self._read()
        except SQLAlchemyError as exc:
            log.warning("/metrics: the queue depth cannot be read: %s", type(exc).__name__)
            yield GaugeMetricFamily("puente_database_up", _UP, value=0)
            return
        yield GaugeMetricFamily("puente_database_up", _UP, value=1)
        yield GaugeMetricFamily(
            "puente_webhook_events_pending", "Stored webhook events not processed yet.", pending
        )
        age = 0.0 if oldest is None else max((utcnow() - oldest).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "puente_webhook_oldest_pending_seconds",
            "How long the oldest unprocessed webhook event has waited (0 when none).",
            value=age,
        )

    def _read(self) -> tuple[int, dt.datetime | None]:
        new = WebhookEvent.state == EventState.NEW.value
        with self.db.read(unscoped="the installation's inbound queue") as session:
            pending = session.scalar(select(func.count()).select_from(WebhookEvent).where(new))
            oldest = session.scalar(
                select(WebhookEvent.received_at).where(new).order_by(WebhookEvent.id).limit(1)
            )
        return int(pending or 0), oldest


_UP = "1 when the database answered this scrape's queries."


def mount(app: FastAPI, runtime: Runtime) -> None:
    exporter = Exporter(runtime.db)
    token = runtime.settings.metrics_token

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        # Liveness only: the process answers. Whether it can serve is /readyz.
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        failing = await run_in_threadpool(failing_checks, runtime)
        if failing:
            reason = next(iter(failing.values()))
            body = {"status": "not_ready", "reason": reason, "failing": failing}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page(request: Request) -> Response:
        if token is not None and not _bearer_matches(request, token.get_secret_value()):
            return JSONResponse(
                {"error": {"code": "not_authenticated", "message": "send the metrics token"}},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await run_in_threadpool(exporter.render)
        return Response(body, media_type=CONTENT_TYPE)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
