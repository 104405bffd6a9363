"""A workspace with two WhatsApp Business Accounts (as the demo seeds) creates a template
from /templates/new: the form offers the accounts by their numbers, the template reaches
the chosen one at the sandbox, and the detail page's status line turns "approved" when
the sandbox's review comes back as a webhook, through the fragment the page polls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from puente.sandbox.seed import DEMO_WABA
from tests.conftest import LiveServer
from tests.e2e.world import add_demo_number, sandbox_control, start_sandbox_and_puente
from tests.factories import PASSWORD, make_channel, make_user, make_workspace
from tests.waiting import wait_until
from tests.webclient import WebClient

TOKEN = "sandbox-templates-token"
OTHER_PHONE = "573009990000"

FORM = {
    "name": "cita_confirmada",
    "category": "UTILITY",
    "language": "es",
    "parameter_format": "positional",
    "header_format": "",
    "body_text": "Hola {{1}}, tu cita es el {{2}}.",
    "body_samples": "Ana\nlunes",
    "footer_text": "",
    "buttons": "",
}


@dataclass
class World:
    web: WebClient
    db: Database
    other_waba: str


@pytest.fixture
def world(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[World]:
    sandbox, puente, runtime = start_sandbox_and_puente(
        settings, db, live_server_factory, TOKEN, template_review_delay=0.2
    )
    control = sandbox_control(sandbox, puente)
    other = control.post(
        "/numbers",
        json={"display_phone_number": OTHER_PHONE, "verified_name": "Esquina Norte"},
    )
    assert other.status_code == 201, other.text
    other_number: dict[str, Any] = other.json()
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        main = add_demo_number(session, ws, runtime, TOKEN)
        main.name = "Tienda La Esquina"
        second = make_channel(
            session,
            ws,
            phone_number_id=other_number["id"],
            waba_id=other_number["waba_id"],
            display_phone_number=OTHER_PHONE,
        )
        second.name = "Esquina Norte"
        second.access_token_encrypted = runtime.secrets.encrypt(TOKEN)
        email = make_user(session, ws, role="supervisor").email
    with httpx.Client(base_url=puente.url, timeout=30) as http:
        web = WebClient(http)
        assert web.login(email, PASSWORD).status_code == 200
        yield World(web, db, other_number["waba_id"])
    control.close()


def test_the_form_offers_each_account_by_its_numbers(world: World) -> None:
    page = world.web.get("/templates/new").text
    assert 'name="waba_id"' in page
    assert f'<option value="{DEMO_WABA}" selected>' in page  # the first number's account
    assert "Tienda La Esquina (+" in page
    assert f'<option value="{world.other_waba}" >Esquina Norte (+{OTHER_PHONE})' in page


def test_a_template_is_created_in_the_chosen_account_and_shows_approved(world: World) -> None:
    created = world.web.post(
        "/templates/new", {**FORM, "waba_id": world.other_waba}, follow_redirects=True
    )
    assert created.status_code == 200, created.text
    assert ">pending<" in created.text
    assert "several WhatsApp Business Accounts" not in created.text
    assert f"Esquina Norte (+{OTHER_PHONE})" in created.text  # which account it is in
    status_url = str(created.url) + "/status"
    assert f'hx-get="{created.url.path}/status"' in created.text  # the page polls its status

    line = wait_until(
        lambda: (
            (r := world.web.get(status_url)).status_code == 200
            and ">approved<" in r.text
            and r.text
        ),
        what="the sandbox's approval to reach the status line",
    )
    assert "hx-get" not in line  # polling stops once Meta has decided
    with world.db.read(unscoped="test") as session:
        template = session.scalar(
            select(MessageTemplate).where(MessageTemplate.name == "cita_confirmada")
        )
        assert template is not None and template.waba_id == world.other_waba
    assert ">approved<" in world.web.get(str(created.url)).text


def test_one_account_needs_no_choice(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Solo")
        make_channel(session, ws)
        email = make_user(session, ws, role="supervisor").email
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        assert 'name="waba_id"' not in web.get("/templates/new").text
