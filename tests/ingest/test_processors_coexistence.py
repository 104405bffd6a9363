"""Coexistence fields: echoes, history import, contacts sync and account updates."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import func, select

from puente.channels.models import ChannelSync
from puente.config import Settings
from puente.contacts.models import Contact, ContactIdentity
from puente.conversations.models import Conversation, Media, Message
from puente.db.session import Database
from puente.events import ChannelSyncProgress, Event, MessageStored, bus
from puente.ingest.processors import UnknownChannel
from puente.runtime import Runtime
from puente.whatsapp.webhooks import DISCONNECTION_REASONS
from tests.conformance.replay import (
    channel,
    contact_of,
    conversation_of,
    load,
    message,
    messages,
    replay,
    setup_runtime,
)

W = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz"
H = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJI"
T = dt.datetime.fromtimestamp(1739321024, dt.UTC)
HISTORY = ["history_phase0_chunk1", "history_phase0_chunk2", "history_phase1_chunk1"]


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    return setup_runtime(settings, db)


def _sync(db: Database) -> ChannelSync:
    with db.read(unscoped="test") as session:
        state = session.scalars(select(ChannelSync)).one()
        session.expunge(state)
        return state


# --- echoes -------------------------------------------------------------------------------


def test_echo_is_an_outbound_app_message_that_leaves_the_window_alone(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_text")
    before = conversation_of(db)
    replay(runtime, "echo_text")
    echo = message(db, W + "ECHO01")
    assert (echo.direction, echo.source, echo.status) == ("outbound", "business_app", "sent")
    assert echo.conversation_id == before.id
    after = conversation_of(db)
    assert after.window_expires_at == before.window_expires_at
    assert after.last_inbound_at == before.last_inbound_at
    assert after.unread_count == before.unread_count == 1
    assert after.last_message_preview == "¡Sí! Te la aparto."
    assert after.last_message_source == "business_app"
    assert after.waiting_since is None  # the owner answered
    assert after.bot_paused is True
    assert channel(db).last_phone_activity_at == T + dt.timedelta(seconds=30)


def test_echo_alone_opens_no_window(runtime: Runtime, db: Database) -> None:
    replay(runtime, "echo_text")
    conv = conversation_of(db)
    assert (conv.window_expires_at, conv.last_inbound_at, conv.unread_count) == (None, None, 0)


def test_bot_keeps_running_when_the_channel_says_so(settings: Settings, db: Database) -> None:
    runtime = setup_runtime(settings, db, pause_bot_on_owner_reply=False)
    replay(runtime, "echo_text")
    assert conversation_of(db).bot_paused is False


def test_echo_media_and_reply_context(runtime: Runtime, db: Database) -> None:
    replay(runtime, "echo_image", "echo_reply_context")
    assert message(db, W + "ECHO02").type == "image"
    assert message(db, W + "ECHO03").reply_to_wamid == W + "TEXT01"
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(Media)) == 1


@pytest.mark.parametrize(
    "order",
    [
        ["echo_text", "echo_edit", "echo_revoke"],
        ["echo_revoke", "echo_edit", "echo_text"],
        ["echo_edit", "echo_text", "echo_revoke", "echo_edit"],
    ],
)
def test_echo_edit_and_revoke_keep_the_original(
    runtime: Runtime, db: Database, order: list[str]
) -> None:
    replay(runtime, *order)
    echo = message(db, W + "ECHO01")
    assert (echo.edited, echo.revoked, echo.text) == (True, True, None)
    assert [h["text"] for h in echo.history] == [
        "¡Sí! Te la aparto.",
        "¡Sí! Te la aparto hasta el viernes.",
    ]
    assert len(messages(db)) == 1


# --- history ------------------------------------------------------------------------------


def _history_state(db: Database) -> dict[str, Any]:
    with db.read(unscoped="test") as session:
        rows = session.execute(
            select(
                Message.wamid, Message.direction, Message.status, Message.type, Message.text
            ).order_by(Message.wamid)
        ).all()
        convs = session.execute(
            select(
                Conversation.contact_id, Conversation.unread_count, Conversation.status
            ).order_by(Conversation.contact_id)
        ).all()
    sync = _sync(db)
    return {
        "messages": rows,
        "conversations": convs,
        "progress": sync.history_progress,
        "chunks": sync.history_chunks,
        "state": sync.history_state,
    }


def test_history_import_keeps_time_direction_and_status_without_waking_anyone(
    runtime: Runtime, db: Database
) -> None:
    seen: list[Event] = []
    unsubscribe = bus.subscribe(Event, seen.append)
    try:
        replay(runtime, *HISTORY)
    finally:
        unsubscribe()
    first = message(db, H + "000001")
    assert (first.direction, first.source, first.status) == ("inbound", "history", "received")
    assert first.timestamp == T - dt.timedelta(hours=1)
    assert first.raw == {"history_context": {"status": "READ"}}
    reply = message(db, H + "000002")
    assert (reply.direction, reply.status) == ("outbound", "read")
    assert message(db, H + "000005").status == "failed"
    assert message(db, H + "000008").status == "sent"
    placeholder = message(db, H + "000004")
    assert placeholder.type == "media_placeholder"
    # Groups are never imported.
    assert all(not m.wamid.endswith("000006") for m in messages(db) if m.wamid)
    with db.read(unscoped="test") as session:
        convs = session.scalars(select(Conversation)).all()
        assert {c.unread_count for c in convs} == {0}
        assert {c.status for c in convs} == {"resolved"}
        assert {c.window_expires_at for c in convs} == {None}
        assert session.scalar(select(func.count()).select_from(Contact)) == 3
    conv = conversation_of(db)
    assert conv.last_message_preview == "No se pudo enviar"
    types = [type(e) for e in seen]
    assert MessageStored not in types
    assert types.count(ChannelSyncProgress) == 3
    sync = _sync(db)
    assert sync.history_progress == {"0": 60, "1": 100}
    assert (sync.history_state, sync.history_chunks, sync.history_messages) == ("complete", 3, 7)


def test_history_progress_waits_for_a_chunk_that_arrives_late(
    runtime: Runtime, db: Database
) -> None:
    """The last chunk (progress 100) before an earlier one: the bar must not read 100 %."""
    from puente.channels.sync import overall_progress

    replay(runtime, "history_phase0_chunk2")
    sync = _sync(db)
    assert (overall_progress(sync), sync.history_state) == (0, "importing")
    replay(runtime, "history_phase1_chunk1")
    sync = _sync(db)
    # Every chunk but the first has arrived; phase 0 chunk 1 is still missing.
    assert (overall_progress(sync), sync.history_state, sync.history_chunks) == (
        0,
        "importing",
        2,
    )
    assert sync.history_completed_at is None
    replay(runtime, "history_phase0_chunk1")
    sync = _sync(db)
    assert (overall_progress(sync), sync.history_state) == (100, "complete")
    assert sync.history_completed_at is not None


def test_history_progress_moves_with_the_unbroken_run(runtime: Runtime, db: Database) -> None:
    from puente.channels.sync import overall_progress

    replay(runtime, "history_phase0_chunk1")
    assert overall_progress(_sync(db)) == 30
    replay(runtime, "history_phase0_chunk2")
    assert overall_progress(_sync(db)) == 60
    replay(runtime, "history_phase1_chunk1")
    assert (overall_progress(_sync(db)), _sync(db).history_state) == (100, "complete")


def test_history_chunks_shuffled_and_repeated_give_the_same_result(
    settings: Settings, db: Database, runtime: Runtime
) -> None:
    replay(runtime, *HISTORY)
    expected = _history_state(db)
    with db.unit_of_work(unscoped="test") as session:
        for model in (Message, Conversation, ContactIdentity, Contact, ChannelSync):
            session.execute(model.__table__.delete())
        from puente.channels.models import HistoryChunkSeen

        session.execute(HistoryChunkSeen.__table__.delete())
    shuffled = HISTORY * 2
    random.Random(3).shuffle(shuffled)
    replay(runtime, *shuffled)
    got = _history_state(db)
    # Ids differ between the two imports; everything a user sees is the same.
    assert got["messages"] == expected["messages"]
    assert [c[1:] for c in got["conversations"]] == [c[1:] for c in expected["conversations"]]
    assert (got["progress"], got["chunks"], got["state"]) == (
        expected["progress"],
        expected["chunks"],
        expected["state"],
    )


@pytest.mark.parametrize("media_first", [False, True])
def test_placeholder_is_completed_by_the_media_webhook_in_any_order(
    runtime: Runtime, db: Database, media_first: bool
) -> None:
    order = ["history_media", "history_phase0_chunk2"]
    replay(runtime, *(order if media_first else reversed(order)))
    replay(runtime, "history_media")  # a repeat changes nothing
    audio = message(db, H + "000004")
    assert (audio.type, audio.source) == ("audio", "history")
    assert audio.content["id"] == "3049585712094857"
    with db.read(unscoped="test") as session:
        media = session.scalars(select(Media)).one()
        assert (media.message_id, media.state) == (audio.id, "pending")


def test_history_declined_is_shown_as_not_shared(runtime: Runtime, db: Database) -> None:
    replay(runtime, "history_declined")
    sync = _sync(db)
    assert sync.history_state == "declined"
    assert sync.history_error is not None and sync.history_error["code"] == 2593109
    assert messages(db) == []


def test_history_never_moves_a_live_conversation_backwards(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_text")
    live = conversation_of(db)
    replay(runtime, *HISTORY)
    after = conversation_of(db)
    assert (after.status, after.unread_count) == ("open", 1)
    assert after.last_message_preview == live.last_message_preview
    assert after.window_expires_at == live.window_expires_at


# --- contacts sync ------------------------------------------------------------------------


def test_contacts_sync_adds_edits_and_removes_without_deleting(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_text", "state_sync_add")
    pablo = contact_of(db, "16505559876")
    assert pablo.business_app_name == "Pablo Morales"
    assert pablo.sources == ["business_app"]
    sheena = contact_of(db)
    assert (sheena.profile_name, sheena.business_app_name) == ("Sheena Nelson", "Sheena (VIP)")
    assert sheena.sources == ["whatsapp", "business_app"]
    replay(runtime, "state_sync_edit")
    assert contact_of(db, "16505559876").business_app_name == "Pablo Morales (Proveedor)"
    replay(runtime, "state_sync_remove")
    with db.read(unscoped="test") as session:
        identity = session.scalars(
            select(ContactIdentity).where(ContactIdentity.contact_id == pablo.id)
        ).one()
        assert identity.in_business_app is False
    assert contact_of(db, "16505559876").id == pablo.id  # the CRM contact stays
    assert channel(db).last_phone_activity_at == T + dt.timedelta(seconds=200)


def test_agent_name_is_never_overwritten_by_the_phone(runtime: Runtime, db: Database) -> None:
    replay(runtime, "state_sync_add")
    with db.unit_of_work(unscoped="test") as session:
        contact = session.scalars(select(Contact).where(Contact.wa_id == "16505559876")).one()
        contact.name = "Pablo (proveedor de telas)"
    replay(runtime, "state_sync_edit")
    contact = contact_of(db, "16505559876")
    assert contact.name == "Pablo (proveedor de telas)"
    assert contact.business_app_name == "Pablo Morales (Proveedor)"


def test_contacts_sync_out_of_order_keeps_the_latest_action(runtime: Runtime, db: Database) -> None:
    replay(runtime, "state_sync_add", "state_sync_remove", "state_sync_edit")
    contact = contact_of(db, "16505559876")
    with db.read(unscoped="test") as session:
        identity = session.scalars(
            select(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
        ).one()
        # The edit is older than the removal: the contact stays out of the address book,
        # and the name kept there went with it.
        assert identity.in_business_app is False
    assert contact.business_app_name is None
    assert contact.business_app_removed_at is not None
    assert contact.in_address_book is False


def test_removal_of_a_contact_puente_never_saw_creates_nothing(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "state_sync_remove", "state_sync_add")
    with db.read(unscoped="test") as session:
        wa_ids = set(session.scalars(select(Contact.wa_id)))
    # The add (older than the removal) arrived late and changes nothing for Pablo.
    assert "16505559876" not in wa_ids


# --- account updates ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(DISCONNECTION_REASONS))
def test_partner_removed_disconnects_with_the_reason_in_plain_words(
    runtime: Runtime, db: Database, reason: str
) -> None:
    payload = load("account_partner_removed")
    payload["entry"][0]["changes"][0]["value"]["disconnection_info"]["reason"] = reason
    replay(runtime, payload)
    number = channel(db)
    assert number.connection_state == "disconnected"
    assert number.state_reason is not None
    assert number.state_reason.startswith(DISCONNECTION_REASONS[reason])


def test_partner_removed_without_details_still_disconnects(runtime: Runtime, db: Database) -> None:
    replay(runtime, "account_partner_removed_plain")
    number = channel(db)
    assert number.connection_state == "disconnected"
    assert "disconnected the number" in (number.state_reason or "")


def test_offboarded_then_reconnected(runtime: Runtime, db: Database) -> None:
    replay(runtime, "account_offboarded")
    number = channel(db)
    assert number.connection_state == "offboarded"
    assert "sending is paused" in (number.state_reason or "")
    replay(runtime, "account_reconnected")
    assert channel(db).connection_state == "reconnected"


def test_an_older_account_event_arriving_late_changes_nothing(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "account_reconnected", "account_offboarded")
    assert channel(db).connection_state == "reconnected"


def test_account_update_for_unknown_waba_is_parked(runtime: Runtime, db: Database) -> None:
    from puente.ingest.processors import apply_change
    from tests.conformance.replay import changes_of

    payload = load("account_offboarded")
    payload["entry"][0]["id"] = "777"
    (change,) = changes_of(payload)
    with db.unit_of_work(unscoped="test") as session, pytest.raises(UnknownChannel) as info:
        apply_change(session, runtime, change)
    assert info.value.waba_id == "777"
