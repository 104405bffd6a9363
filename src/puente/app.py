"""The ASGI application: web UI, REST API and webhook endpoint in one process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from puente.config import Settings
from puente.db.session import Database
from puente.errors import PuenteError
from puente.foreground import ForegroundMiddleware
from puente.operations.endpoints import mount as mount_operations
from puente.operations.middleware import OperationsMiddleware
from puente.runtime import Runtime
from puente.workers import install_workers

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    *,
    run_workers: bool | None = None,
) -> FastAPI:
    runtime = Runtime.from_settings(settings, db)
    start_workers = runtime.settings.run_workers if run_workers is None else run_workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The web process relays its own events to the agents' streams (and on PostgreSQL
        # to other processes) whether or not it runs the workers; stop_workers closes it.
        app.state.inbox_hub.open()
        if start_workers:
            runtime.start_workers()
        try:
            yield
        finally:
            runtime.stop_workers()

    app = FastAPI(
        title="Puente",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    # Reading requests first: in-process workers step aside while one is handled.
    app.add_middleware(ForegroundMiddleware)

    @app.exception_handler(PuenteError)
    async def puente_error(_request: Request, exc: PuenteError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status_code)

    # Outermost: request ids and timings cover everything below, the refusals included.
    app.add_middleware(OperationsMiddleware)
    # /healthz, /readyz and /metrics.
    mount_operations(app, runtime)
    _mount_parts(app, runtime)
    return app


def _mount_parts(app: FastAPI, runtime: Runtime) -> None:
    """Each part registers its routes here; the workers come from install_workers."""
    from puente.api.routes import mount as mount_api
    from puente.ingest.routes import mount as mount_ingest
    from puente.web.inbox.routes import mount as mount_inbox
    from puente.web.mount import mount as mount_web
    from puente.web.routes.broadcasts import router as broadcasts_web
    from puente.web.routes.channels import router as channels_web

    installed = install_workers(runtime)
    mount_api(app, runtime)
    mount_web(app, runtime)
    app.include_router(channels_web)
    mount_inbox(app, runtime, installed.hub)
    mount_ingest(app, runtime, installed.writer)
    app.include_router(broadcasts_web)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
