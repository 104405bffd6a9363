"""Fixtures for the inbox: a workspace with an owner, two agents, a number, and a
logged-in web client over the ASGI app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from tests.factories import PASSWORD, make_channel, make_user, make_workspace
from tests.webclient import WebClient

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Shop:
    workspace_id: int
    channel_id: int
    owner_id: int
    owner_email: str
    ana_id: int
    ana_email: str
    beto_id: int
    beto_email: str


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def shop(db: Database) -> Shop:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        owner = make_user(session, ws, role="owner", name="Olga Dueña", email="olga@tienda.example")
        ana = make_user(session, ws, role="agent", name="Ana Pérez", email="ana@tienda.example")
        beto = make_user(session, ws, role="agent", name="Beto Ruiz", email="beto@tienda.example")
        channel = make_channel(session, ws, display_phone_number="5215550001111")
        return Shop(
            ws.id, channel.id, owner.id, owner.email, ana.id, ana.email, beto.id, beto.email
        )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def login(client: TestClient, email: str) -> WebClient:
    web = WebClient(client)
    response = web.login(email, PASSWORD)
    assert response.status_code == 200, response.text
    return web


@pytest.fixture
def owner_web(client: TestClient, shop: Shop) -> WebClient:
    return login(client, shop.owner_email)
