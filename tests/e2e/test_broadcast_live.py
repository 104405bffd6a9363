"""A broadcast's page in headless Chromium, left open while the broadcast starts and
runs against the Meta sandbox: the header, the action buttons and the recipients' table
move together without a reload, and once it is done Pause and Cancel are gone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from puente.config import Settings
from puente.contacts.models import Contact, ContactTag, Tag
from puente.db.base import utcnow
from puente.db.session import Database
from puente.outbound.broadcasts import service as broadcasts
from puente.outbound.models import Broadcast
from puente.outbound.templates.service import do_sync_workspace
from puente.sandbox.seed import CUSTOMERS
from tests.conftest import LiveServer
from tests.e2e.world import (
    add_demo_number,
    sandbox_control,
    sign_in_browser,
    start_sandbox_and_puente,
)
from tests.factories import make_user, make_workspace

# What a person sees in the browser does not change with the database under it: one leg
# (the data paths behind it run on both through the HTTP and domain tests).
pytestmark = [pytest.mark.browser, pytest.mark.one_leg("sqlite")]

TOKEN = "sandbox-broadcast-token"


@dataclass
class Live:
    url: str
    db: Database
    email: str
    broadcast_id: int


@pytest.fixture
def live(settings: Settings, db: Database, live_server_factory: type[LiveServer]) -> Iterator[Live]:
    sandbox, puente, runtime = start_sandbox_and_puente(
        settings, db, live_server_factory, TOKEN, status_delays=(0.0, 0.2, 0.4)
    )
    control = sandbox_control(sandbox, puente)
    with runtime.db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda La Esquina")
        email = make_user(session, ws, role="supervisor").email
        add_demo_number(session, ws, runtime, TOKEN)
        session.flush()
        do_sync_workspace(session, runtime, ws.id)
        tag = Tag(workspace_id=ws.id, name="clientes")
        session.add(tag)
        for wa_id, name in CUSTOMERS.items():
            contact = Contact(workspace_id=ws.id, wa_id=wa_id, name=name, sources=["manual"])
            session.add(contact)
            session.flush()
            session.add(ContactTag(workspace_id=ws.id, contact_id=contact.id, tag_id=tag.id))
        session.flush()
        # Scheduled far ahead: the page is opened before it starts.
        broadcast = broadcasts.do_create_broadcast(
            session,
            workspace_id=ws.id,
            name="Pedidos de la semana",
            template_name="pedido_confirmado",
            language="es",
            variables={"body.1": "{first_name|cliente}", "body.2": "#4821"},
            audience={"kind": "tags", "tags": ["clientes"]},
            scheduled_at="2099-01-01T10:00",
        )
        broadcast_id = broadcast.id
    yield Live(puente.url, db, email, broadcast_id)
    control.close()


def _start_now(db: Database, broadcast_id: int) -> None:
    """The scheduled time arrives."""
    with db.unit_of_work(unscoped="test") as session:
        broadcast = session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        broadcast.scheduled_at = utcnow() - dt.timedelta(seconds=1)


def test_the_table_and_buttons_follow_the_header_live(live: Live, browser: Any) -> None:
    page = sign_in_browser(browser, live.url, live.email)
    page.goto(f"{live.url}/broadcasts/{live.broadcast_id}")
    rows = page.locator("[data-testid=recipient-state]")
    assert rows.count() == len(CUSTOMERS)
    assert set(rows.all_inner_texts()) == {"queued"}
    assert page.locator("[data-testid=action-pause]").count() == 1

    _start_now(live.db, live.broadcast_id)

    page.wait_for_selector("[data-testid=state]:text-is('completed')")
    # The answer that said "completed" carried the table and the buttons too.
    assert "queued" not in rows.all_inner_texts()
    assert page.locator("[data-testid=action-pause]").count() == 0
    assert page.locator("[data-testid=action-cancel]").count() == 0
    # Receipts arriving after the last send still reach the table, without a reload.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=recipient-state]')]"
        ".every(td => td.textContent === 'read')"
    )
    assert page.locator("[data-testid=count-read]").inner_text() == f"read: {len(CUSTOMERS)}"
    page.context.close()
