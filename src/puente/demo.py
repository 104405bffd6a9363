"""`puente demo` / `make demo`: a seeded Puente that needs no accounts and no services."""

from __future__ import annotations

import uvicorn
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.accounts.service import do_create_workspace
from puente.accounts.tokens import do_create_token
from puente.app import create_app
from puente.config import Settings
from puente.db.migrate import upgrade
from puente.runtime import Runtime


def seed(runtime: Runtime) -> str | None:
    """Create the demo workspace once; returns a fresh API token when it seeded."""
    with runtime.db.unit_of_work() as session:
        if session.scalar(select(Workspace.id).where(Workspace.slug == "demo")) is not None:
            return None
        ws = do_create_workspace(session, name="Demo", slug="demo", timezone="America/Bogota")
        return do_create_token(session, workspace_id=ws.id, name="demo").secret


def run_demo(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url())
    app = create_app(settings)
    token = seed(app.state.runtime)
    print(f"Puente demo at {settings.base_url}")
    if token:
        print(f"API token (shown once): {token}")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
