"""field `messages`: every inbound type stored as agents will see it, through apply_change."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from puente.config import Settings
from puente.contacts.models import Contact, ContactIdentity
from puente.conversations.models import Conversation, ConversationStatus, Media, Message
from puente.db.session import Database
from puente.events import ContactCreated, ConversationUpdated, Event, MessageStored, bus
from puente.runtime import Runtime
from tests.conformance.replay import (
    contact_of,
    conversation_of,
    load,
    message,
    messages,
    replay,
    setup_runtime,
)

W = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz"


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    return setup_runtime(settings, db)


def test_text_creates_contact_conversation_and_unread_message(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_text")
    msg = message(db, W + "TEXT01")
    assert (msg.direction, msg.source, msg.type, msg.status) == (
        "inbound",
        "customer",
        "text",
        "received",
    )
    assert msg.text == "Hola, ¿tienen la talla M?"
    assert msg.timestamp == dt.datetime(2025, 2, 12, 0, 43, 44, tzinfo=dt.UTC)
    contact = contact_of(db)
    assert (contact.phone_e164, contact.profile_name, contact.sources) == (
        "+16505551234",
        "Sheena Nelson",
        ["whatsapp"],
    )
    conv = conversation_of(db)
    assert conv.unread_count == 1
    assert conv.last_message_preview == "Hola, ¿tienen la talla M?"
    assert conv.last_inbound_at == msg.timestamp
    assert conv.window_expires_at == msg.timestamp + dt.timedelta(hours=24)
    assert conv.waiting_since == msg.timestamp


@pytest.mark.parametrize(
    ("name", "type_", "text", "mime"),
    [
        ("messages_image", "image", "Esta camisa", "image/jpeg"),
        ("messages_video", "video", "Mira", "video/mp4"),
        ("messages_audio_voice", "audio", None, "audio/ogg; codecs=opus"),
        ("messages_document", "document", "Factura", "application/pdf"),
        ("messages_sticker", "sticker", None, "image/webp"),
    ],
)
def test_media_messages_queue_a_download(
    runtime: Runtime, db: Database, name: str, type_: str, text: str | None, mime: str
) -> None:
    replay(runtime, name)
    (msg,) = messages(db)
    assert (msg.type, msg.text) == (type_, text)
    assert msg.content["mime_type"] == mime
    with db.read(unscoped="test") as session:
        media = session.scalars(select(Media)).one()
        assert (media.message_id, media.state, media.mime_type) == (msg.id, "pending", mime)
        assert media.meta_media_id == msg.content["id"]
        assert media.sha256 == msg.content["sha256"]


def test_voice_note_keeps_voice_flag_and_document_its_filename(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_audio_voice", "messages_document")
    assert message(db, W + "AUDIO1").content["voice"] is True
    with db.read(unscoped="test") as session:
        names = set(session.scalars(select(Media.filename)))
    assert "factura-0042.pdf" in names


@pytest.mark.parametrize(
    ("name", "wamid", "type_", "text"),
    [
        ("messages_location", "LOCAT1", "location", "Zócalo"),
        ("messages_contacts", "CONTA1", "contacts", "Pablo Morales"),
        ("messages_interactive_button_reply", "BTNRE1", "interactive", "Sí, confirmar"),
        ("messages_interactive_list_reply", "LISTR1", "interactive", "Talla M"),
        ("messages_interactive_nfm_reply", "NFMRE1", "interactive", "Sent"),
        ("messages_button", "BUTTO1", "button", "Dejar de recibir"),
        ("messages_order", "ORDER1", "order", "Para el viernes"),
    ],
)
def test_structured_types_keep_wire_content_and_searchable_text(
    runtime: Runtime, db: Database, name: str, wamid: str, type_: str, text: str
) -> None:
    replay(runtime, name)
    msg = message(db, W + wamid)
    assert (msg.type, msg.text) == (type_, text)
    wire = load(name)["entry"][0]["changes"][0]["value"]["messages"][0][type_]
    assert msg.content == (wire if isinstance(wire, dict) else {"items": wire})


def test_interactive_reply_points_at_the_quoted_message(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_interactive_button_reply", "messages_reply_context")
    assert message(db, W + "BTNRE1").reply_to_wamid == W + "SENT01"
    assert message(db, W + "REPLY1").reply_to_wamid == W + "SENT01"


def test_forwarded_flags_are_kept(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_forwarded")
    msg = message(db, W + "FORWD1")
    assert msg.context == {"forwarded": True, "frequently_forwarded": True}
    assert msg.reply_to_wamid is None


def test_reaction_references_target_and_removal_is_not_unread(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_text", "messages_reaction", "messages_reaction_removed")
    added, removed = message(db, W + "REACT1"), message(db, W + "REACT2")
    assert (added.type, added.reply_to_wamid, added.text) == ("reaction", W + "TEXT01", "👍")
    assert (removed.type, removed.reply_to_wamid, removed.text) == ("reaction", W + "TEXT01", None)
    assert conversation_of(db).unread_count == 2  # the text and the 👍, not the removal


def test_system_message_neither_opens_window_nor_counts_unread(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_system_user_changed_number")
    msg = message(db, W + "SYSTE1")
    assert msg.type == "system"
    assert "changed their phone number" in (msg.text or "")
    conv = conversation_of(db)
    assert (conv.unread_count, conv.window_expires_at) == (0, None)


@pytest.mark.parametrize(
    ("name", "code"), [("unsupported_131051", 131051), ("unsupported_131060", 131060)]
)
def test_unsupported_keeps_raw_and_error(
    runtime: Runtime, db: Database, name: str, code: int
) -> None:
    replay(runtime, f"messages_{name}")
    (msg,) = messages(db)
    assert msg.type == "unsupported"
    assert msg.error is not None and msg.error["code"] == code
    assert msg.raw is not None and msg.raw["errors"][0]["code"] == code
    # The customer did write: agents must see it and may answer.
    assert conversation_of(db).unread_count == 1


def test_unknown_type_becomes_unsupported_with_everything_kept(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_unknown_type")
    msg = message(db, W + "FUTUR1")
    assert msg.type == "unsupported"
    assert msg.content == {"type": "hologram"}
    assert msg.raw is not None and msg.raw["hologram"] == {"frames": 12}


def test_referral_opens_a_72_hour_window(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_referral")
    msg = message(db, W + "REFER1")
    assert msg.referral is not None and msg.referral["source_type"] == "ad"
    assert msg.referral["ctwa_clid"].startswith("ARAk")
    conv = conversation_of(db)
    assert conv.window_expires_at == msg.timestamp + dt.timedelta(hours=72)


def test_bsuid_only_user_is_found_again_through_the_channel_identity(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_bsuid_only")
    second = load("messages_bsuid_only")
    value = second["entry"][0]["changes"][0]["value"]
    value["messages"][0]["id"] = W + "BSUID2"
    replay(runtime, second)
    with db.read(unscoped="test") as session:
        contact = session.scalars(select(Contact)).one()
        identity = session.scalars(select(ContactIdentity)).one()
        conversations = session.scalar(select(func.count()).select_from(Conversation))
        session.expunge_all()
    assert (contact.wa_id, contact.phone_e164, contact.profile_name) == (None, None, "Ana")
    assert identity.bsuid == "US.13491208655302741918"
    assert (identity.username, identity.parent_bsuid) == ("@ana.compra", "US.ENT.1122334455")
    assert conversations == 1
    assert conversation_of_contact(db, contact.id).unread_count == 2


def conversation_of_contact(db: Database, contact_id: int) -> Conversation:
    with db.read(unscoped="test") as session:
        conv = session.scalars(
            select(Conversation).where(Conversation.contact_id == contact_id)
        ).one()
        session.expunge(conv)
        return conv


def test_duplicate_delivery_stores_one_message_and_one_unread(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_text", "messages_text", "messages_text")
    assert len(messages(db)) == 1
    assert conversation_of(db).unread_count == 1


def test_customer_message_reopens_resolved_conversation(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_text")
    with db.unit_of_work(unscoped="test") as session:
        conv = session.scalars(select(Conversation)).one()
        conv.status = ConversationStatus.RESOLVED.value
        conv.unread_count = 0
    replay(runtime, "messages_reply_context")
    conv = conversation_of(db)
    assert (conv.status, conv.unread_count) == ("open", 1)


def test_edit_before_original_gives_the_same_result(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_edit", "messages_text")
    reversed_order = message(db, W + "TEXT01")
    assert reversed_order.text == "Hola, ¿tienen la talla L?"
    assert reversed_order.edited is True
    assert [h["text"] for h in reversed_order.history] == ["Hola, ¿tienen la talla M?"]
    # Applying the edit again (Meta's retry) changes nothing.
    replay(runtime, "messages_edit")
    again = message(db, W + "TEXT01")
    assert (again.text, again.history) == (reversed_order.text, reversed_order.history)
    assert len(messages(db)) == 1  # the edit is not a message of its own


def test_revoke_keeps_history_in_any_order(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_revoke", "messages_text", "messages_edit")
    msg = message(db, W + "TEXT01")
    assert (msg.revoked, msg.edited, msg.text) == (True, True, None)
    assert [h["text"] for h in msg.history] == [
        "Hola, ¿tienen la talla M?",
        "Hola, ¿tienen la talla L?",
    ]
    assert conversation_of(db).last_message_preview == "[revoked]"


def test_events_are_published_after_commit(runtime: Runtime, db: Database) -> None:
    seen: list[Event] = []
    unsubscribe = bus.subscribe(Event, seen.append)
    try:
        replay(runtime, "messages_text")
    finally:
        unsubscribe()
    types = [type(e) for e in seen]
    assert types.count(MessageStored) == 1
    assert ConversationUpdated in types and ContactCreated in types


def test_errors_only_payload_stores_nothing(runtime: Runtime, db: Database) -> None:
    replay(runtime, "messages_errors_only")
    assert messages(db) == []


def test_message_for_unknown_number_is_parked(runtime: Runtime, db: Database) -> None:
    from puente.ingest.processors import UnknownChannel, apply_change
    from tests.conformance.replay import changes_of

    payload = load("messages_text")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    (change,) = changes_of(payload)
    with db.unit_of_work(unscoped="test") as session, pytest.raises(UnknownChannel) as info:
        apply_change(session, runtime, change)
    assert info.value.phone_number_id == "999"
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_brazilian_echo_without_ninth_digit_lands_in_the_same_conversation(
    runtime: Runtime, db: Database
) -> None:
    replay(runtime, "messages_brazil_with_ninth_digit", "echo_brazil_without_ninth_digit")
    with db.read(unscoped="test") as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 1
        assert session.scalar(select(func.count()).select_from(Conversation)) == 1
    assert contact_of(db, "5511999998888").profile_name == "João"
