"""Media downloads end to end: the sandbox plays Meta (webhooks, media URLs that expire, a
Graph that fails now and then), Puente receives over HTTP, the media worker downloads, and
the file comes back out of the REST API byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.conversations.media_worker import MediaDownloader, MediaPolicy, media_path
from puente.conversations.models import Media, Message
from puente.db.base import utcnow
from puente.events import Event, MessageUpdated
from puente.sandbox.media import SAMPLES
from puente.sandbox.seed import DEMO_NUMBER
from tests.conversations.conftest import PDF, PNG, World, seeded
from tests.factories import make_token, make_workspace


def _media_events(events: list[Event], message_id: int) -> list[MessageUpdated]:
    return [e for e in events if isinstance(e, MessageUpdated) and e.message_id == message_id]


def test_a_customer_photo_is_downloaded_and_served_byte_for_byte(world: World) -> None:
    message = world.customer_sends("image", caption="¿Tienen este modelo?")
    pending = world.media_of(message.id)
    assert pending.state == "pending"
    # The webhook's checksum is Meta's, and the file is not there yet.
    assert pending.sha256 == hashlib.sha256(PNG).hexdigest()
    listed = world.api.get("/media", params={"message_id": message.id}).json()
    assert [(m["state"], m["file_url"]) for m in listed] == [("pending", None)]
    early = world.api.get(f"/media/{pending.id}")
    assert early.status_code == 404
    assert early.json()["error"]["code"] == "media_not_stored"

    assert world.downloader.step() is True

    stored = world.media_of(message.id)
    sha = hashlib.sha256(PNG).hexdigest()
    assert (stored.state, stored.sha256, stored.file_size) == ("stored", sha, len(PNG))
    assert stored.attempts == 0 and stored.last_error is None
    path = media_path(world.runtime.settings.data_dir, sha)
    assert path == world.runtime.settings.data_dir / "media" / sha[:2] / sha
    assert path.read_bytes() == PNG

    listed = world.api.get("/media", params={"message_id": message.id}).json()
    assert listed[0]["state"] == "stored"
    assert listed[0]["mime_type"] == "image/png"
    res = world.api.get(listed[0]["file_url"].removeprefix("/api/v1"))
    assert res.status_code == 200
    assert res.content == PNG
    assert res.headers["content-type"] == "image/png"
    assert res.headers["content-disposition"].startswith("inline")

    updated = _media_events(world.events, message.id)
    assert len(updated) == 1
    assert updated[0].media is not None and updated[0].media.state == "stored"
    assert updated[0].conversation_id == message.conversation_id
    # Nothing else is due: the worker goes idle.
    assert world.downloader.step() is False


def test_the_same_file_twice_is_stored_once(world: World) -> None:
    first = world.customer_sends("document", filename="factura.pdf")
    second = world.customer_sends("document", filename="factura-copia.pdf")
    assert world.downloader.step() is True
    a, b = world.media_of(first.id), world.media_of(second.id)
    assert a.id != b.id
    assert a.state == b.state == "stored"
    assert a.sha256 == b.sha256 == hashlib.sha256(PDF).hexdigest()
    files = [p for p in (world.runtime.settings.data_dir / "media").rglob("*") if p.is_file()]
    assert files == [media_path(world.runtime.settings.data_dir, PDF_SHA)]
    res = world.api.get(f"/media/{b.id}")
    assert res.content == PDF
    assert res.headers["content-type"] == "application/pdf"
    # Anything a browser could run is sent as a download, under the customer's file name.
    assert res.headers["content-disposition"].startswith("attachment")
    assert "factura-copia.pdf" in res.headers["content-disposition"]


PDF_SHA = hashlib.sha256(PDF).hexdigest()


def test_an_expired_url_is_replaced_by_a_fresh_one(world: World) -> None:
    message = world.customer_sends("image")
    world.faults([404])  # the first URL is dead by the time the download starts
    assert world.downloader.step() is True
    media = world.media_of(message.id)
    assert media.state == "stored"
    assert media.attempts == 0
    assert world.api.get(f"/media/{media.id}").content == PNG


def test_a_url_that_keeps_expiring_counts_as_a_failed_attempt(world: World) -> None:
    message = world.customer_sends("image")
    world.faults([404, 404])
    world.downloader.step()
    media = world.media_of(message.id)
    assert (media.state, media.attempts) == ("pending", 1)
    assert media.last_error is not None and "expired" in media.last_error


def test_a_graph_503_is_retried_later_and_the_file_arrives(world: World) -> None:
    message = world.customer_sends("image", caption="foto")
    world.faults([503])
    before = utcnow()
    assert world.downloader.step(now=before) is True

    media = world.media_of(message.id)
    assert (media.state, media.attempts) == ("pending", 1)
    assert media.last_error is not None and "temporary problem" in media.last_error
    assert media.next_attempt_at is not None
    wait = (media.next_attempt_at - before).total_seconds()
    assert 15 <= wait <= 30  # the first backoff: half to all of 30 s
    # The message itself is there, and says its file is on the way.
    listed = world.api.get("/media", params={"message_id": message.id}).json()
    assert listed[0]["state"] == "pending" and listed[0]["attempts"] == 1
    assert _media_events(world.events, message.id) == []

    # Not due yet: the worker leaves it alone (no dedup lock, just a time).
    assert world.downloader.step(now=before + dt.timedelta(seconds=1)) is False
    assert world.downloader.step(now=media.next_attempt_at) is True

    media = world.media_of(message.id)
    assert (media.state, media.last_error) == ("stored", None)
    assert world.api.get(f"/media/{media.id}").content == PNG
    assert len(_media_events(world.events, message.id)) == 1


def test_backoff_grows_and_the_download_gives_up(world: World) -> None:
    world.downloader = MediaDownloader(
        world.runtime, MediaPolicy(base_delay=10.0, max_attempts=3), rng=seeded()
    )
    message = world.customer_sends("image")
    world.faults([500, 502, 503])
    now = utcnow()
    waits = []
    for _ in range(3):
        world.downloader.step(now=now)
        media = world.media_of(message.id)
        if media.next_attempt_at is not None:
            waits.append((media.next_attempt_at - now).total_seconds())
            now = media.next_attempt_at
    assert media.state == "failed"
    assert media.attempts == 3
    assert media.next_attempt_at is None
    assert media.last_error is not None and "temporary problem" in media.last_error
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20
    res = world.api.get(f"/media/{media.id}")
    assert res.status_code == 404
    assert "temporary problem" in res.json()["error"]["message"]
    # The failure is announced so the inbox stops showing "downloading".
    events = _media_events(world.events, message.id)
    assert [e.media.state if e.media else None for e in events] == ["failed"]


def test_a_checksum_mismatch_is_a_failed_attempt(world: World) -> None:
    message = world.customer_sends("image")
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        media = session.get(Media, world.media_of(message.id).id)
        assert media is not None
        media.sha256 = hashlib.sha256(b"something else").hexdigest()
    world.downloader.step()
    media = world.media_of(message.id)
    assert (media.state, media.attempts) == ("pending", 1)
    assert media.last_error is not None and "checksum" in media.last_error
    assert not list((world.runtime.settings.data_dir / "media").rglob("*.part"))


def test_media_ids_older_than_seven_days_are_given_up(world: World) -> None:
    message = world.customer_sends("image")
    later = utcnow() + dt.timedelta(days=7, minutes=1)
    world.downloader.step(now=later)
    media = world.media_of(message.id)
    assert media.state == "failed"
    assert media.last_error is not None and "7 days" in media.last_error


def test_media_of_another_workspace_is_not_found(world: World) -> None:
    message = world.customer_sends("image")
    world.downloader.step()
    media = world.media_of(message.id)
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        other = make_token(session, make_workspace(session))
    res = world.api.get(f"/media/{media.id}", headers={"Authorization": f"Bearer {other}"})
    assert res.status_code == 404
    assert res.json()["error"]["code"] == "not_found"
    listed = world.api.get(
        "/media", params={"message_id": message.id}, headers={"Authorization": f"Bearer {other}"}
    )
    assert listed.json() == []
    with world.runtime.db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, media.workspace_id)
        assert workspace is not None
        narrow = make_token(session, workspace, scopes=["conversations:read"])
    res = world.api.get(f"/media/{media.id}", headers={"Authorization": f"Bearer {narrow}"})
    assert res.status_code == 403
    assert (
        world.api.get(f"/media/{media.id}", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )


def _wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("the sandbox never sent what was expected")


def test_history_placeholders_get_their_files_from_the_later_media_webhook(
    world: World,
) -> None:
    res = world.control.post(
        f"/numbers/{DEMO_NUMBER}/history", json={"chats": 6, "messages": 40, "seed": 3}
    )
    assert res.status_code == 200, res.text
    res = world.graph.post(
        f"/{DEMO_NUMBER}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "history"},
    )
    assert res.status_code == 200, res.text
    history = _wait_for(lambda: world.control.get("/webhooks", params={"field": "history"}).json())
    world.process()
    media_items = [
        m for update in history for m in update["value"].get("messages", []) if m.get("type")
    ]
    assert media_items, "the seeded history has recent media"
    wamids = {m["id"]: m for m in media_items}

    with world.runtime.db.read(unscoped="test") as session:
        completed = list(session.scalars(select(Message).where(Message.wamid.in_(wamids))))
        left = session.scalars(select(Message).where(Message.type == "media_placeholder")).all()
        for m in completed:
            session.expunge(m)
    # Placeholders older than 14 days get no media webhook and stay placeholders.
    assert left
    assert {m.wamid for m in completed} == set(wamids)
    for message in completed:
        assert message.type == wamids[message.wamid]["type"]
        assert world.media_of(message.id).state == "pending"

    while world.downloader.step():
        pass

    for message in completed:
        kind = wamids[message.wamid]["type"]
        media = world.media_of(message.id)
        assert media.state == "stored", media.last_error
        assert world.api.get(f"/media/{media.id}").content == SAMPLES[kind][1]
        assert len(_media_events(world.events, message.id)) == 1


def test_the_running_workers_download_on_their_own(running_world: World) -> None:
    world = running_world
    res = world.control.post(
        f"/numbers/{DEMO_NUMBER}/inbound",
        json={"from": "573001112233", "type": "image", "media": {"caption": "sola"}},
    )
    assert res.status_code == 201, res.text
    wamid = res.json()["id"]

    def stored_media() -> Any:
        with world.runtime.db.read(unscoped="test") as session:
            message_id = session.scalar(select(Message.id).where(Message.wamid == wamid))
        if message_id is None:
            return None
        listed = world.api.get("/media", params={"message_id": message_id}).json()
        return listed if listed and listed[0]["state"] == "stored" else None

    listed = _wait_for(stored_media)
    assert listed[0]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert world.api.get(listed[0]["file_url"].removeprefix("/api/v1")).content == PNG
