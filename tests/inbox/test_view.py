"""The conversation view renders every kind of message the way an agent needs it."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

from puente.config import Settings
from puente.contacts.consent import do_record_consent
from puente.contacts.models import Contact
from puente.contacts.service import do_add_tags
from puente.conversations.models import Media
from puente.db.session import Database
from tests.factories import make_workspace
from tests.inbox.conftest import NOW, Shop
from tests.inbox.helpers import add_conversation, add_message
from tests.webclient import WebClient

T = NOW - dt.timedelta(minutes=30)


def _message_html(page: str, message_id: int) -> str:
    start = page.index(f'id="m-{message_id}"')
    return page[start : page.index("</article>", start)]


def test_every_message_type_is_rendered(owner_web: WebClient, shop: Shop, db: Database) -> None:
    ids: dict[str, int] = {}
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        cid = c.id

        def add(name: str, **kw: object) -> None:
            ids[name] = add_message(s, c, at=T + dt.timedelta(seconds=len(ids)), **kw).id  # type: ignore[arg-type]

        add("text", text="*Hola* _qué_ ~tal~ ```x = 1``` <script>alert(1)</script>")
        add(
            "image",
            type_="image",
            content={"id": "m1", "mime_type": "image/jpeg", "caption": "Mi foto"},
            text="Mi foto",
        )
        add("video", type_="video", content={"id": "m2", "mime_type": "video/mp4"})
        add("voice", type_="audio", content={"id": "m3", "mime_type": "audio/ogg", "voice": True})
        add(
            "document",
            type_="document",
            content={"id": "m4", "filename": "factura.pdf", "mime_type": "application/pdf"},
        )
        add("sticker", type_="sticker", content={"id": "m5", "mime_type": "image/webp"})
        add(
            "location",
            type_="location",
            content={
                "latitude": 19.4326,
                "longitude": -99.1332,
                "name": "Zócalo",
                "address": "CDMX",
            },
        )
        add(
            "contacts",
            type_="contacts",
            content={
                "items": [
                    {
                        "name": {"formatted_name": "Juan Pérez"},
                        "phones": [{"phone": "+52 55 1234 5678", "type": "CELL"}],
                    }
                ]
            },
        )
        add(
            "button_reply",
            type_="interactive",
            content={
                "type": "button_reply",
                "button_reply": {"id": "yes", "title": "Sí, confirmo"},
            },
        )
        add(
            "list_reply",
            type_="interactive",
            content={
                "type": "list_reply",
                "list_reply": {"id": "r2", "title": "Martes", "description": "10:00"},
            },
        )
        add(
            "template_button",
            type_="button",
            content={"payload": "STOP", "text": "Dejar de recibir"},
        )
        add("original", text="¿A qué hora abren?", wamid="wamid.ORIGINAL")
        add(
            "quoted",
            text="Respondo a eso",
            reply_to_wamid="wamid.ORIGINAL",
            context={"id": "wamid.ORIGINAL"},
        )
        add(
            "reaction",
            type_="reaction",
            content={"message_id": "wamid.ORIGINAL", "emoji": "❤️"},
            text="❤️",
            reply_to_wamid="wamid.ORIGINAL",
        )
        add(
            "edited",
            text="Mañana a las 10",
            edited=True,
            history=[
                {
                    "kind": "original",
                    "type": "text",
                    "text": "Mañana a las 9",
                    "content": {"body": "Mañana a las 9"},
                }
            ],
        )
        add(
            "revoked",
            text="borrado",
            revoked=True,
            history=[
                {"kind": "original", "type": "text", "text": "Algo que me arrepentí", "content": {}}
            ],
        )
        add(
            "owner",
            text="Te escribo desde el teléfono",
            direction="outbound",
            source="business_app",
            status="delivered",
        )
        add("history", text="Mensaje viejo", source="history", status="received")
        add("bot", text="Soy el bot", direction="outbound", source="bot", status="read")
        add("broadcast", text="Promo", direction="outbound", source="broadcast", status="sent")
        add(
            "failed",
            text="No llegó",
            direction="outbound",
            source="agent",
            status="failed",
            error={
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
            },
        )
        add(
            "failed_unknown",
            text="Tampoco",
            direction="outbound",
            source="agent",
            status="failed",
            error={
                "code": 999999,
                "title": "Something odd",
                "error_data": {"details": "Meta's own words"},
            },
        )
        add("unsupported", type_="unsupported", content={"type": "poll"})
    page = owner_web.get(f"/inbox/c/{cid}").text

    text = _message_html(page, ids["text"])
    assert "<strong>Hola</strong> <em>qué</em> <del>tal</del>" in text
    assert '<code class="mono">x = 1</code>' in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Image" in _message_html(page, ids["image"]) and "Mi foto" in _message_html(
        page, ids["image"]
    )
    assert "not downloaded yet" in _message_html(page, ids["video"])
    assert "Voice note" in _message_html(page, ids["voice"])
    assert "factura.pdf" in _message_html(page, ids["document"])
    assert "Sticker" in _message_html(page, ids["sticker"])
    location = _message_html(page, ids["location"])
    assert "Zócalo" in location and "openstreetmap.org/?mlat=19.4326&amp;mlon=-99.1332" in location
    contacts = _message_html(page, ids["contacts"])
    assert "Juan Pérez" in contacts and 'href="tel:%2B525512345678"' in contacts
    assert "Sí, confirmo" in _message_html(page, ids["button_reply"])
    assert "Martes" in _message_html(page, ids["list_reply"]) and "10:00" in _message_html(
        page, ids["list_reply"]
    )
    assert "Dejar de recibir" in _message_html(page, ids["template_button"])
    quoted = _message_html(page, ids["quoted"])
    assert 'data-testid="quoted"' in quoted and "¿A qué hora abren?" in quoted
    # The reaction sits on the message it reacts to, not as a bubble of its own.
    assert "❤️" in _message_html(page, ids["original"])
    assert f'id="m-{ids["reaction"]}"' not in page
    edited = _message_html(page, ids["edited"])
    assert "Edited" in edited and "Mañana a las 9" in edited and "Mañana a las 10" in edited
    revoked = _message_html(page, ids["revoked"])
    assert "This message was deleted" in revoked and "Algo que me arrepentí" in revoked
    assert "Sent from the WhatsApp Business app" in _message_html(page, ids["owner"])
    history = _message_html(page, ids["history"])
    assert "Imported from chat history" in history
    assert "Bot" in _message_html(page, ids["bot"]) and "tick-read" in _message_html(
        page, ids["bot"]
    )
    assert "Broadcast" in _message_html(page, ids["broadcast"]) and 'title="Sent"' in _message_html(
        page, ids["broadcast"]
    )
    assert 'title="Delivered"' in _message_html(page, ids["owner"])
    failed = _message_html(page, ids["failed"])
    assert "tick-failed" in failed and "only a template can reach them now" in failed
    assert "Meta&#39;s own words" in _message_html(page, ids["failed_unknown"])
    assert "cannot show yet (poll)" in _message_html(page, ids["unsupported"])


def test_imported_history_shows_its_own_date(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    old = dt.datetime(2026, 5, 3, 15, 4, tzinfo=dt.UTC)
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        m = add_message(s, c, at=old, text="Hace meses", source="history")
        cid, mid = c.id, m.id
    html = _message_html(owner_web.get(f"/inbox/c/{cid}").text, mid)
    # Its date and time as every bubble shows them; "imported" is said once, above the run.
    assert re.search(r"<time [^>]*>5/3/26, 3:04\s?PM</time>", html), html


def test_window_state_with_time_left_and_closed(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        open_c = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Abierta", at=NOW - dt.timedelta(hours=2)
        )
        closed_c = add_conversation(
            s,
            shop.workspace_id,
            shop.channel_id,
            "Cerrada",
            at=NOW - dt.timedelta(hours=30),
            window_open=False,
        )
        ids = (open_c.id, closed_c.id)
    opened = owner_web.get(f"/inbox/c/{ids[0]}").text
    assert re.search(r"Window open: 2[12] h \d+ min left", opened)
    assert 'data-testid="send-form"' in opened
    closed = owner_web.get(f"/inbox/c/{ids[1]}").text
    assert "Window closed: only templates can be sent" in closed
    assert 'data-testid="send-form"' not in closed
    assert 'data-testid="template-picker"' in closed


def test_opening_clears_the_unread_marker(owner_web: WebClient, shop: Shop, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW, unread=2)
        cid = c.id
    assert 'data-testid="unread"' in owner_web.get("/inbox").text
    owner_web.get(f"/inbox/c/{cid}")
    assert 'data-testid="unread"' not in owner_web.get("/inbox").text


def test_stored_media_is_served_and_documents_download(
    owner_web: WebClient, shop: Shop, db: Database, settings: Settings
) -> None:
    data = b"%PDF-1.4 factura"
    sha = hashlib.sha256(data).hexdigest()
    path = Path(settings.data_dir) / "media" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        m = add_message(
            s, c, at=T, type_="document", content={"id": "d1", "filename": "factura.pdf"}
        )
        s.add(
            Media(
                workspace_id=c.workspace_id,
                channel_id=c.channel_id,
                message_id=m.id,
                meta_media_id="d1",
                mime_type="application/pdf",
                sha256=sha,
                filename="factura.pdf",
                state="stored",
            )
        )
        pending = add_message(s, c, at=T, type_="image", content={"id": "i1"})
        s.add(
            Media(
                workspace_id=c.workspace_id,
                channel_id=c.channel_id,
                message_id=pending.id,
                meta_media_id="i1",
                state="pending",
            )
        )
        cid, mid, pid = c.id, m.id, pending.id
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert f'href="/inbox/media/{mid}" download="factura.pdf"' in page
    response = owner_web.get(f"/inbox/media/{mid}")
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-disposition"].startswith("attachment")
    assert owner_web.get(f"/inbox/media/{pid}").status_code == 404


def test_other_workspaces_conversations_are_not_found(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        other = make_workspace(s, "Otra")
        from tests.factories import make_channel

        ch = make_channel(s, other)
        c = add_conversation(s, other.id, ch.id, "Ajena", at=NOW)
        m = add_message(s, c, at=T, text="secreto")
        cid, mid = c.id, m.id
    assert owner_web.get(f"/inbox/c/{cid}").status_code == 404
    assert owner_web.get(f"/inbox/c/{cid}/m/{mid}").status_code == 404
    assert owner_web.get(f"/inbox/c/{cid}/recent").status_code == 404
    assert "Ajena" not in owner_web.get("/inbox").text


def test_the_newest_items_for_a_tab_catching_up(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    """What a tab fetches when its stream (re)connects: the newest page of the timeline,
    each item under the id the page already uses, oldest first."""
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        first = add_message(s, c, at=T, text="primero").id
        second = add_message(s, c, at=T + dt.timedelta(seconds=5), text="segundo").id
        cid = c.id
    res = owner_web.get(f"/inbox/c/{cid}/recent")
    assert res.status_code == 200
    ids = re.findall(r'<article id="(m-\d+)"', res.text)
    assert ids == [f"m-{first}", f"m-{second}"]
    assert "segundo" in _message_html(res.text, second)
    assert "<html" not in res.text  # a fragment, not a page


def test_the_side_panel_shows_consent_tags_and_agents_names(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    """The conversation's header, consent, tags and the agents' names come from the same
    statements as the messages: each must still reach the page."""
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        contact = s.get(Contact, c.contact_id)
        assert contact is not None
        do_add_tags(s, contact, ["vip", "b2b"])
        do_record_consent(s, contact=contact, kind="opt_in", source="agent")
        add_message(s, c, at=T, text="hola", direction="outbound", source="agent",
                    status="read", sender_user_id=shop.owner_id)  # fmt: skip
        bare = add_conversation(s, shop.workspace_id, shop.channel_id, "Beto", at=NOW)
        cid, bare_id = c.id, bare.id
    page = owner_web.get(f"/inbox/c/{cid}").text
    assert re.search(r'data-testid="consent">Opted in', page)
    tags = page[page.index('data-testid="contact-tags"') :]
    chips = re.findall(r'<span class="label-chip">([^<]+)</span>', tags[: tags.index("</dd>")])
    assert chips == ["b2b", "vip"]
    assert '<p class="msg-source">Olga Dueña</p>' in page
    other = owner_web.get(f"/inbox/c/{bare_id}").text
    assert 'data-testid="consent"' not in other
    assert 'data-testid="contact-tags"' not in other
