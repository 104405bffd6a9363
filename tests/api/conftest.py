"""Fixtures for the REST API tests: the app over httpx and a workspace with a token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.factories import make_token, make_workspace


@dataclass
class Tenant:
    workspace: Workspace
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(db: Database, name: str, scopes: list[str] | None = None) -> Tenant:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, name)
        return Tenant(ws, make_token(session, ws, scopes))


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), base_url="http://testserver/api/v1") as c:
        yield c


@pytest.fixture
def tenant(db: Database) -> Tenant:
    return make_tenant(db, "Acme")
