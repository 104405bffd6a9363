"""A workspace worth moving: a customer's photo through the sandbox (stored by the media
worker), the demo's automation and knowledge base, and a few rows of every
other kind carried, written the way the application writes them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.automation.demo import seed_demo_automation
from puente.automation.kb_demo import seed_demo_knowledge_base
from puente.channels.models import Channel
from puente.config import Settings
from puente.contacts.models import (
    ConsentEvent,
    Contact,
    ContactConsent,
    ContactTag,
    Segment,
    Tag,
)
from puente.conversations.models import Conversation, ConversationEvent, Mention, Note, Snippet
from puente.db.models import Base
from puente.db.session import Database
from puente.outbound.models import MessageTemplate
from puente.reports.models import CsatSurvey, ReportFact
from tests.conftest import PG_URL, TEST_DB, LiveServer, _ensure_pg_database
from tests.conversations.conftest import World, _world
from tests.factories import make_user

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
# The target installation's own audit key.
AUDIT_KEY = b"portability-target-audit-key"


@dataclass
class Source:
    world: World
    workspace_id: int
    slug: str


@pytest.fixture
def source(
    settings: Settings, db: Database, live_server_factory: type[LiveServer]
) -> Iterator[Source]:
    for world in _world(settings, db, live_server_factory, run_workers=False):
        message = world.customer_sends("image", caption="¿Tienen este modelo?")
        assert world.downloader.step() is True
        with world.runtime.db.unit_of_work(unscoped="test: a workspace worth moving") as s:
            ws_id = s.scalar(select(Workspace.id))
            assert ws_id is not None
            _seed(s, ws_id, message.conversation_id, message.id)
            slug = s.get(Workspace, ws_id).slug  # type: ignore[union-attr]
        yield Source(world, ws_id, slug)


def _seed(s: sa.orm.Session, ws_id: int, conversation_id: int, message_id: int) -> None:
    ws = s.get(Workspace, ws_id)
    assert ws is not None
    ws.settings = {"marketing_requires_opt_in": True, "optout_keywords": ["BAJA"]}
    owner = make_user(s, ws, role="owner", email="owner@tienda.example")
    channel = s.scalars(select(Channel)).one()
    seed_demo_knowledge_base(s, ws)
    seed_demo_automation(s, ws_id, owner.id, channel.id, "a-long-enough-password")
    conversation = s.get(Conversation, conversation_id)
    assert conversation is not None
    contact = s.get(Contact, conversation.contact_id)
    assert contact is not None
    contact.custom_fields = {"ciudad": "Bogotá", "talla": "M"}
    conversation.assignee_id = owner.id
    tag = Tag(workspace_id=ws_id, name="vip")
    s.add(tag)
    s.flush()
    s.add(ContactTag(workspace_id=ws_id, contact_id=contact.id, tag_id=tag.id))
    s.add(
        Segment(
            workspace_id=ws_id,
            name="VIP de este número",
            filter={"tags_any": ["vip"], "channel_ids": [channel.id]},
        )
    )
    event = ConsentEvent(
        workspace_id=ws_id,
        contact_id=contact.id,
        kind="opt_in",
        source="agent",
        by_user_id=owner.id,
        message_id=message_id,
        at=NOW,
    )
    s.add(event)
    s.flush()
    s.add(
        ContactConsent(
            workspace_id=ws_id,
            contact_id=contact.id,
            state="opt_in",
            since=NOW,
            source="agent",
            event_id=event.id,
        )
    )
    note = Note(workspace_id=ws_id, conversation_id=conversation_id, author_id=owner.id, body="ojo")
    s.add(note)
    s.flush()
    s.add(Mention(workspace_id=ws_id, note_id=note.id, user_id=owner.id))
    s.add(
        ConversationEvent(
            workspace_id=ws_id,
            conversation_id=conversation_id,
            actor_id=owner.id,
            kind="assigned",
            data={"from_user_id": None, "to_user_id": owner.id, "to_name": "Owner"},
        )
    )
    s.add(Snippet(workspace_id=ws_id, owner_id=owner.id, shortcut="hola", body="¡Hola!"))
    s.add(
        MessageTemplate(
            workspace_id=ws_id,
            waba_id=channel.waba_id,
            name="pedido_listo",
            language="es",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "Tu pedido {{1}} está listo"}],
        )
    )
    # What reports count: the rollups are summed again from these in the target.
    s.add_all(
        [
            ReportFact(
                workspace_id=ws_id,
                kind="message_in",
                at=NOW,
                channel_id=channel.id,
                conversation_id=conversation_id,
                rolled_up=True,
            ),
            ReportFact(
                workspace_id=ws_id,
                kind="first_response",
                at=NOW,
                channel_id=channel.id,
                conversation_id=conversation_id,
                agent_id=owner.id,
                seconds=42.5,
                rolled_up=True,
            ),
        ]
    )
    s.add(
        CsatSurvey(
            workspace_id=ws_id,
            conversation_id=conversation_id,
            channel_id=channel.id,
            contact_id=contact.id,
            agent_id=owner.id,
            state="answered",
            score=5,
            answered_at=NOW,
        )
    )
    s.flush()


def sqlite_target(tmp_path: Path) -> Database:
    path = tmp_path / "target" / "puente.db"
    path.parent.mkdir(parents=True)
    target = Database(f"sqlite:///{path}")
    target.use_audit_keys([AUDIT_KEY])
    Base.metadata.create_all(target.engine)
    return target


def postgres_target() -> Database:
    """A database of its own beside the test leg's (which other tests truncate)."""
    url = sa.engine.make_url(PG_URL)
    # One per test leg: both legs may run at once against the same server.
    url = url.set(database=f"{url.database}_portability_{TEST_DB}")
    _ensure_pg_database(url.render_as_string(hide_password=False))
    target = Database(url.render_as_string(hide_password=False))
    target.use_audit_keys([AUDIT_KEY])
    with target.engine.begin() as conn:
        # Whatever an earlier run (of other code) left in it goes.
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    Base.metadata.create_all(target.engine)
    return target
