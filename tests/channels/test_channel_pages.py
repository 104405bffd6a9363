"""The Channels pages over real HTTP, signed in through the login form: the wizard against
the sandbox, the live progress fragment, states in plain words, the 12-day warning, sync
retries, this month's costs and the feature table in English and Spanish."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import httpx
import pytest

from puente.accounts.models import Role, Workspace
from puente.accounts.service import do_create_user
from puente.channels.features import DATA_DIR
from puente.channels.models import Channel
from puente.conversations.models import Message
from tests.channels.conftest import NUMBER, PHONE, Coex
from tests.waiting import wait_until
from tests.webclient import WebClient

# How the pages look and read runs on one leg: what they change is checked on both engines
# through the API and the domain tests (see the one_leg marker in tests/conftest.py).
pytestmark = pytest.mark.one_leg

PASSWORD = "correct horse battery staple"


def signed_in(coex: Coex, locale: str = "en", role: Role = Role.OWNER) -> WebClient:
    email = f"{role.value}-{locale}@example.com"
    with coex.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, coex.workspace_id)
        assert ws is not None
        do_create_user(
            session,
            workspace=ws,
            email=email,
            password=PASSWORD,
            name="Ana",
            role=role,
            locale=locale,
        )
    web = WebClient(httpx.Client(base_url=coex.puente.url, timeout=30))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def test_wizard_connects_the_business_app_through_the_sandbox(coex: Coex) -> None:
    web = signed_in(coex)
    empty = web.get("/channels")
    assert "No numbers yet" in empty.text and 'href="/channels/new"' in empty.text
    choice = web.get("/channels/new")
    assert "Connect your WhatsApp Business app" in choice.text
    assert "New Cloud API number" in choice.text
    form = web.get("/channels/new?method=coexistence").text
    assert "2.24.17" in form and "Facebook business portfolio" in form
    assert 'name="import_history" value="yes" checked' in form
    assert "needs disconnecting the number in the Business app and onboarding again" in form

    started = web.post(
        "/channels/onboard",
        {"method": "coexistence", "phone": "+" + PHONE, "import_history": "yes"},
    )
    assert started.status_code == 303
    page = web.get(started.headers["location"])
    code = re.search(r'data-testid="confirm-code">(\d{6})<', page.text)
    assert code, page.text
    assert f"/_sandbox/phone/{NUMBER}/owner" in page.text
    onboarding_id = int(started.headers["location"].rsplit("/", 1)[1])

    waiting = web.htmx("GET", f"/channels/onboarding/{onboarding_id}/status")
    assert "Waiting for the confirmation" in waiting.text
    coex.confirm({"id": onboarding_id, "confirm_code": code.group(1)})
    done = web.htmx("GET", f"/channels/onboarding/{onboarding_id}/status")
    target = done.headers["hx-redirect"]
    assert re.fullmatch(r"/channels/\d+\?flash=connected", target)
    channel_id = int(target.split("/")[2].split("?")[0])

    def complete() -> str | None:
        html = web.get(f"/channels/{channel_id}/progress").text
        return html if 'value="100"' in html else None

    progress = wait_until(complete, what="the progress fragment at 100 %")

    def settled() -> str | None:
        # Chunks arrive out of order: the bar can reach 100 % while a phase's last
        # chunks are still being applied. Once the import has settled, polling slows.
        html = web.get(f"/channels/{channel_id}/progress").text
        return html if 'hx-trigger="every 10s"' in html else None

    progress = wait_until(settled, what="the progress fragment to poll slowly once complete")
    assert 'value="100"' in progress
    detail = web.get(target).text
    assert "The number is connected." in detail
    assert 'data-testid="state">Connected' in detail
    assert 'data-testid="sync-smb_app_state_sync-accepted"' in detail
    assert 'data-testid="sync-history-accepted"' in detail
    assert "Broadcast lists become Puente broadcasts" in detail
    listing = web.get("/channels").text
    assert f'data-testid="channel-{channel_id}"' in listing and "Connected" in listing


def test_disconnection_is_shown_in_plain_words_with_sending_paused(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    web = signed_in(coex)
    coex.control.post(
        f"/numbers/{NUMBER}/events",
        json={"event": "PARTNER_REMOVED", "reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    )
    page = wait_until(
        lambda: (t := web.get(f"/channels/{channel_id}").text) and "Disconnected" in t and t,
        what="the disconnection",
    )
    assert "Disconnected: phone inactive" in page
    assert "did not open the WhatsApp Business app for about 14 days" in page
    assert 'data-testid="sending-paused"' in page
    assert "/channels/new?method=coexistence" in page  # start again

    coex.control.post(f"/numbers/{NUMBER}/events", json={"event": "ACCOUNT_RECONNECTED"})
    page = wait_until(
        lambda: (t := web.get(f"/channels/{channel_id}").text) and "Reconnected" in t and t,
        what="the reconnection",
    )
    assert 'data-testid="sending-paused"' not in page


def test_offboarded_number_pauses_sending(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    coex.control.post(f"/numbers/{NUMBER}/events", json={"event": "ACCOUNT_OFFBOARDED"})
    status = coex.wait_status(channel_id, lambda s: s["state"] == "offboarded", "offboarding")
    assert status["sending_paused"] is True
    assert status["state_label"] == "Offboarded: sending paused"


@pytest.mark.parametrize(("days", "warned"), [(13, True), (5, False)])
def test_phone_inactivity_warning_after_12_days(coex: Coex, days: int, warned: bool) -> None:
    channel_id = coex.onboard(import_history=False)
    # The contacts sync stamps the phone's activity too; let it land first.
    coex.wait_status(channel_id, lambda s: s["contacts_synced"] > 0, "the contacts sync")
    with coex.db.unit_of_work(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        channel.last_phone_activity_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    page = signed_in(coex).get(f"/channels/{channel_id}").text
    assert ('data-testid="inactivity-warning"' in page) is warned
    if warned:
        assert f"no activity for {days} days" in page


def test_failed_onboarding_offers_to_start_again_with_either_method(coex: Coex) -> None:
    web = signed_in(coex)
    started = coex.start()
    coex.confirm(started)
    coex.control.post("/clock", json={"advance_seconds": 31})
    fragment = web.htmx("GET", f"/channels/onboarding/{started['id']}/status").text
    assert 'data-testid="onboarding-error"' in fragment and "30 seconds" in fragment
    listing = web.get("/channels").text
    assert 'data-testid="failed-onboarding"' in listing
    assert "/channels/new?method=coexistence" in listing
    assert "/channels/new?method=new_number" in listing


def test_failed_sync_can_be_retried_from_the_page(coex: Coex) -> None:
    web = signed_in(coex)
    started = coex.start()
    coex.confirm(started)
    coex.sandbox.world.numbers[NUMBER].syncs["history"] = "elsewhere"
    channel_id = coex.poll(started["id"])["channel_id"]
    page = web.get(f"/channels/{channel_id}").text
    assert 'data-testid="sync-history-failed"' in page and "already requested" in page
    assert 'data-testid="retry-history"' in page
    del coex.sandbox.world.numbers[NUMBER].syncs["history"]
    res = web.post(f"/channels/{channel_id}/sync/history")
    assert res.status_code == 303 and res.headers["location"].endswith("flash=retried")
    page = web.get(res.headers["location"]).text
    assert 'data-testid="sync-history-accepted"' in page
    assert 'data-testid="retry-history"' not in page
    again = web.post(f"/channels/{channel_id}/sync/history")
    assert "error=" in again.headers["location"]
    assert "one per onboarding" in web.get(again.headers["location"]).text


def test_month_costs_count_free_and_billable_messages(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    now = dt.datetime.now(dt.UTC)
    with coex.db.unit_of_work(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        from tests.factories import make_contact, make_conversation

        ws = session.get(Workspace, coex.workspace_id)
        assert ws is not None
        contact = make_contact(session, ws)
        conversation = make_conversation(session, channel, contact)
        rows = [
            ("business_app", None),
            ("business_app", None),
            ("agent", {"billable": False, "category": "service", "pricing_model": "PMP"}),
            ("api", {"billable": True, "category": "marketing", "pricing_model": "PMP"}),
            ("broadcast", {"billable": True, "category": "utility", "pricing_model": "PMP"}),
            ("agent", None),
        ]
        for n, (source, pricing) in enumerate(rows):
            session.add(
                Message(
                    workspace_id=ws.id,
                    channel_id=channel.id,
                    conversation_id=conversation.id,
                    contact_id=contact.id,
                    wamid=f"wamid.cost{n}",
                    direction="outbound",
                    source=source,
                    type="text",
                    content={"body": "x"},
                    timestamp=now,
                    status="delivered",
                    pricing=pricing,
                    history=[],
                )
            )
    status = coex.status(channel_id)["costs"]
    assert (status["free"], status["billable"], status["pending"]) == (3, 2, 1)
    assert status["billable_by_category"] == {"marketing": 1, "utility": 1}
    page = signed_in(coex).get(f"/channels/{channel_id}").text
    assert 'data-testid="free-count">3<' in page and 'data-testid="billable-count">2<' in page


def test_feature_table_in_spanish(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    page = signed_in(coex, locale="es").get(f"/channels/{channel_id}").text
    assert "Las listas de difusión pasan a ser difusiones de Puente" in page
    assert "Los mensajes de bienvenida y de ausencia pasan a ser automatizaciones" in page
    assert 'data-testid="state">Conectado' in page and "Qué funciona dónde" in page


def test_checklist_leaves_out_countries_where_meta_offers_no_coexistence(
    coex: Coex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads((DATA_DIR / "countries.json").read_text(encoding="utf-8"))
    data["excluded"] = ["VE"]
    (tmp_path / "countries.json").write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setenv("PUENTE_COEX_DATA_DIR", str(tmp_path))
    form = signed_in(coex).get("/channels/new?method=coexistence").text
    assert '<option value="MX">México</option>' in form
    assert 'value="VE"' not in form


def test_agents_cannot_open_the_channels_pages(coex: Coex) -> None:
    web = signed_in(coex, role=Role.AGENT)
    assert web.get("/channels").status_code == 403
    assert (
        web.post("/channels/onboard", {"method": "coexistence", "phone": PHONE}).status_code == 403
    )


def test_failure_is_explained_in_spanish(coex: Coex) -> None:
    web = signed_in(coex, locale="es")
    coex.sandbox.config.signup_code_ttl = -1  # every code is already too old
    started = coex.start()
    coex.confirm(started)
    fragment = web.htmx("GET", f"/channels/onboarding/{started['id']}/status").text
    assert "El código de registro de Meta venció" in fragment
    assert "Vuelve a empezar el registro" in fragment


def test_meta_mode_page_loads_embedded_signup_only_when_configured(coex: Coex) -> None:
    web = signed_in(coex)
    settings = coex.runtime.settings
    settings.graph_base_url = "https://graph.facebook.com"
    settings.meta_config_id = ""
    page = web.get("/channels/new?method=coexistence")
    assert 'data-testid="meta-not-configured"' in page.text and "fb-signup" not in page.text
    settings.meta_config_id = "123456"
    page = web.get("/channels/new?method=coexistence")
    assert 'id="fb-signup"' in page.text and "/static/channels-signup.js" in page.text
    assert 'data-config-id="123456"' in page.text
    assert "https://connect.facebook.net" in page.headers["content-security-policy"]
    assert page.headers["cross-origin-opener-policy"] == "same-origin-allow-popups"
    # Every other page keeps the strict policy.
    assert "facebook" not in web.get("/channels").headers["content-security-policy"]


def test_metas_reason_in_spanish(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    web = signed_in(coex, locale="es")
    coex.control.post(
        f"/numbers/{NUMBER}/events",
        json={"event": "PARTNER_REMOVED", "reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    )
    coex.wait_status(channel_id, lambda s: s["state"] == "disconnected", "the disconnection")
    page = web.get(f"/channels/{channel_id}").text
    assert "Desconectado: teléfono inactivo" in page
    assert (
        "El teléfono del dueño no abrió la app WhatsApp Business durante unos 14 días. "
        "Desconectado por WhatsApp." in page
    )


@pytest.mark.parametrize(("pause", "expected"), [("yes", True), (None, False)])
def test_owner_reply_from_the_phone_pauses_the_bot_as_set(
    coex: Coex, pause: str | None, expected: bool
) -> None:
    from sqlalchemy import select

    from puente.conversations.models import Conversation

    channel_id = coex.onboard(import_history=False)
    web = signed_in(coex)
    form = {"pause_bot_on_owner_reply": pause} if pause else {}
    saved = web.post(f"/channels/{channel_id}/settings", form)
    assert saved.headers["location"].endswith("flash=saved")
    page = web.get(saved.headers["location"]).text
    checked = 'name="pause_bot_on_owner_reply" value="yes" checked' in page
    assert checked is expected
    sent = coex.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": "573001112233", "text": "Ya te atiendo"}
    )
    assert sent.status_code == 201, sent.text

    def echoed() -> bool | None:
        with coex.db.read(unscoped="test") as session:
            conversation = session.scalar(
                select(Conversation).where(Conversation.channel_id == channel_id)
            )
            return None if conversation is None else conversation.bot_paused

    paused = wait_until(lambda: (v := echoed()) is not None and (v,), what="the echo")[0]
    assert paused is expected
