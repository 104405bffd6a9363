"""The outgoing webhooks' pages over HTTP, signed in through the login form: an admin finds
Webhooks in the settings, adds an endpoint and sees its secret once, a private address is
refused with the reason in Spanish, the delivery log shows each delivery and its attempts
(sent by the worker to the repository's example receiver, which verifies them with the
secret the page showed), resends one or all failed, and an agent may not see any of it."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import User
from puente.app import create_app
from puente.config import Settings
from puente.db.base import utcnow
from puente.db.session import Database
from puente.integrations.webhooks.models import WebhookDelivery, WebhookEndpoint
from puente.integrations.webhooks.worker import deliver_due
from puente.web.i18n import translations
from tests.conftest import free_port
from tests.factories import PASSWORD, make_user, make_workspace
from tests.integrations.receiver import Receiver
from tests.webclient import WebClient

# The pages' looks, words and refusals: the endpoint operations, the sending and the
# retries run on both engines in the webhooks' own tests.
pytestmark = pytest.mark.one_leg

PRIVATE = (
    "%(host)s is a private or local address (%(address)s); Puente only sends to public "
    "addresses unless the operator sets PUENTE_WEBHOOKS_ALLOW_PRIVATE=true."
)
SECRET = re.compile(r'data-testid="new-secret">(whsec_[A-Za-z0-9+/=]+)<')


def spanish(msgid: str, **params: object) -> str:
    """The catalogue's Spanish for `msgid`, which must have one."""
    text = translations("es").gettext(msgid)
    assert text != msgid, f"no Spanish for {msgid!r}"
    return text % params if params else text


def make_app(settings: Settings, db: Database, *, allow_private: bool) -> FastAPI:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda Sol")
        make_user(session, ws, role="admin", email="alba@example.com", name="Alba")
        spanish = make_user(session, ws, role="admin", email="sol@example.com", name="Sol")
        spanish.locale = "es"
        make_user(session, ws, role="agent", email="beto@example.com", name="Beto")
        make_user(session, ws, role="supervisor", email="sara@example.com", name="Sara")
    settings = settings.model_copy(update={"webhooks_allow_private": allow_private})
    return create_app(settings, db, run_workers=False)


def signed_in(app: FastAPI, email: str) -> WebClient:
    web = WebClient(TestClient(app))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def add_endpoint(web: WebClient, url: str, events: list[str]) -> tuple[int, str]:
    added = web.post("/settings/webhooks", data={"url": url, "events": events})
    assert added.status_code == 200, added.text
    found = SECRET.search(added.text)
    assert found is not None
    endpoint = re.search(r'action="/settings/webhooks/(\d+)/test"', added.text)
    assert endpoint is not None
    return int(endpoint.group(1)), found.group(1)


def delivery_ids(db: Database) -> list[int]:
    with db.read(unscoped="test") as session:
        return list(session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)))


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
    settings: Settings, db: Database
) -> None:
    web = signed_in(make_app(settings, db, allow_private=False), "alba@example.com")
    settings_page = web.get("/settings/profile")
    assert 'href="/settings/webhooks"' in settings_page.text  # beside API tokens and teams

    empty = web.get("/settings/webhooks")
    assert empty.status_code == 200
    assert "No endpoints yet." in empty.text
    form = web.get("/settings/webhooks/new")
    assert "A message is sent or received" in form.text
    assert 'value="channel.connection_changed"' in form.text

    added = web.post(
        "/settings/webhooks",
        data={
            "url": "https://hooks.example.com/puente",
            "description": "Tienda online",
            "events": ["message.created", "conversation.assigned"],
        },
    )
    assert added.status_code == 200
    assert "Endpoint added." in added.text
    assert "Copy it now: it will not be shown again." in added.text
    assert 'data-testid="copy-secret"' in added.text
    secret = SECRET.search(added.text)
    assert secret is not None
    hint = secret.group(1)[-4:]

    listing = web.get("/settings/webhooks")
    assert "https://hooks.example.com/puente" in listing.text
    assert "Tienda online" in listing.text
    assert "Enabled" in listing.text
    assert "none yet" in listing.text
    assert secret.group(1) not in listing.text
    with db.read(unscoped="test") as session:
        endpoint = session.scalars(select(WebhookEndpoint)).one()
        session.expunge(endpoint)
    page = web.get(f"/settings/webhooks/{endpoint.id}")
    assert secret.group(1) not in page.text  # never again, only its last characters
    assert f"whsec_…{hint}" in page.text
    assert "A conversation is assigned" in page.text
    assert "No deliveries yet." in page.text
    assert endpoint.secret != secret.group(1)  # stored encrypted

    # Changed, switched off and on, then deleted after the confirmation the page asks.
    form = web.get(f"/settings/webhooks/{endpoint.id}/edit")
    assert 'value="https://hooks.example.com/puente"' in form.text
    assert re.search(r'value="conversation.assigned" checked', form.text)
    assert not re.search(r'value="contact.created" checked', form.text)
    edited = web.post(
        f"/settings/webhooks/{endpoint.id}",
        data={
            "url": "https://hooks.example.com/puente/v2",
            "description": "",
            "events": ["contact.created"],
        },
        follow_redirects=True,
    )
    assert "Endpoint saved." in edited.text
    assert "https://hooks.example.com/puente/v2" in edited.text
    assert "A contact is added" in edited.text
    off = web.post(f"/settings/webhooks/{endpoint.id}/disable", follow_redirects=True)
    assert "Endpoint disabled" in off.text
    assert 'data-testid="enable-endpoint"' in off.text
    assert "Disabled" in web.get("/settings/webhooks").text
    on = web.post(f"/settings/webhooks/{endpoint.id}/enable", follow_redirects=True)
    assert "Endpoint enabled" in on.text
    assert "Delete this endpoint and its delivery log?" in on.text
    gone = web.post(f"/settings/webhooks/{endpoint.id}/delete", follow_redirects=True)
    assert "Endpoint deleted." in gone.text
    assert "No endpoints yet." in gone.text


def test_a_refused_endpoint_keeps_the_form_and_says_why_in_spanish(
    settings: Settings, db: Database
) -> None:
    web = signed_in(make_app(settings, db, allow_private=False), "sol@example.com")
    refused = web.post(
        "/settings/webhooks",
        data={
            "url": "http://192.168.1.20:8080/hooks",
            "description": "Caja",
            "events": ["message.created"],
        },
    )
    assert refused.status_code == 422
    error = re.search(r'data-testid="error">([^<]+)<', refused.text)
    assert error is not None
    # The reason, in the admin's language: the catalogue's Spanish, with the address.
    reason = spanish(PRIVATE, host="192.168.1.20", address="192.168.1.20")
    assert html.unescape(error.group(1)) == reason
    assert "PUENTE_WEBHOOKS_ALLOW_PRIVATE=true" in reason
    assert "Añadir endpoint" in refused.text
    # What was typed is still there to correct.
    assert 'value="http://192.168.1.20:8080/hooks"' in refused.text
    assert 'value="Caja"' in refused.text
    assert re.search(r'value="message.created" checked', refused.text)
    assert "whsec_" not in refused.text

    nothing = web.post("/settings/webhooks", data={"url": "https://hooks.example.com/x"})
    assert nothing.status_code == 422
    assert html.escape(spanish("Choose at least one event to send.")) in nothing.text
    with db.read(unscoped="test") as session:
        assert session.scalars(select(WebhookEndpoint)).all() == []


def test_the_delivery_log_shows_attempts_and_resends(settings: Settings, db: Database) -> None:
    web = signed_in(make_app(settings, db, allow_private=True), "alba@example.com")
    receiver = Receiver()
    endpoint_id, secret = add_endpoint(web, receiver.url, ["message.created"])
    with receiver.serving(secret):
        queued = web.post(f"/settings/webhooks/{endpoint_id}/test", follow_redirects=True)
        assert "Test event queued" in queued.text
        assert "Pending" in queued.text
        assert deliver_due(db) == 1
    # The example receiver verified it with the secret the page showed.
    assert [e["type"] for e in receiver.events] == ["webhook.test"]
    assert receiver.events[0]["data"]["endpoint_id"] == endpoint_id

    (first,) = delivery_ids(db)
    page = web.get(f"/settings/webhooks/{endpoint_id}")
    assert f'data-testid="delivery-state-{first}">Delivered<' in page.text
    assert "1 attempt" in page.text
    assert "Delivered" in web.get("/settings/webhooks").text  # the list's last delivery
    attempts = web.htmx("GET", f"/settings/webhooks/{endpoint_id}/deliveries/{first}")
    assert attempts.status_code == 200
    assert "<html" not in attempts.text  # the fragment a row opens
    assert ">200<" in attempts.text
    assert '<pre class="excerpt">ok</pre>' in attempts.text
    assert "webhook.test" in attempts.text  # its payload
    plain = web.get(f"/settings/webhooks/{endpoint_id}/deliveries/{first}")
    assert "<html" in plain.text and ">200<" in plain.text  # the same without scripts

    # A new secret is shown once; the receiver still has the old one and refuses (401),
    # which is final: a 4xx is never retried.
    rotated = web.post(f"/settings/webhooks/{endpoint_id}/rotate")
    new_secret = SECRET.search(rotated.text)
    assert new_secret is not None and new_secret.group(1) != secret
    with receiver.serving(secret):
        web.post(f"/settings/webhooks/{endpoint_id}/test")
        assert deliver_due(db) == 0
    second = delivery_ids(db)[-1]
    failed = web.get(f"/settings/webhooks/{endpoint_id}?state=failed")
    assert f'data-testid="delivery-{second}"' in failed.text
    assert f'data-testid="delivery-{first}"' not in failed.text
    assert "HTTP 401" in failed.text
    detail = web.htmx("GET", f"/settings/webhooks/{endpoint_id}/deliveries/{second}")
    assert ">401<" in detail.text and "bad signature" in detail.text
    delivered = web.get(f"/settings/webhooks/{endpoint_id}?state=delivered")
    assert f'data-testid="delivery-{first}"' in delivered.text
    assert f'data-testid="delivery-{second}"' not in delivered.text

    # With the receiver told the new secret, "resend all failed" gets it through; one
    # delivery resent again keeps its webhook-id, so the receiver acts on it once.
    with receiver.serving(new_secret.group(1)):
        resent = web.post(f"/settings/webhooks/{endpoint_id}/resend-failed", follow_redirects=True)
        assert "1 failed delivery queued to be sent again." in resent.text
        assert deliver_due(db) == 1
        again = web.post(
            f"/settings/webhooks/{endpoint_id}/deliveries/{second}/resend", follow_redirects=True
        )
        assert "Delivery queued to be sent again." in again.text
        assert deliver_due(db) == 1
    assert [e["type"] for e in receiver.events] == ["webhook.test", "webhook.test"]
    log = web.get(f"/settings/webhooks/{endpoint_id}")
    assert len(re.findall(r'data-testid="delivery-state-\d+">Delivered<', log.text)) == 2
    assert "3 attempts" in log.text  # refused, delivered, delivered again
    nothing = web.post(f"/settings/webhooks/{endpoint_id}/resend-failed", follow_redirects=True)
    assert "No failed deliveries to send again." in nothing.text


def test_an_endpoint_failing_for_three_days_is_shown_disabled_with_the_reason(
    settings: Settings, db: Database
) -> None:
    web = signed_in(make_app(settings, db, allow_private=True), "alba@example.com")
    nobody = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens: connection refused
    endpoint_id, _secret = add_endpoint(web, nobody, ["message.created"])
    web.post(f"/settings/webhooks/{endpoint_id}/test")
    start = utcnow()
    assert deliver_due(db, now=start) == 0
    failing = web.get(f"/settings/webhooks/{endpoint_id}")
    assert 'data-testid="failing-since"' in failing.text
    assert "connection refused" in failing.text
    assert "Failing since" in web.get("/settings/webhooks").text

    assert deliver_due(db, now=start + dt.timedelta(days=3, minutes=1)) == 0
    listing = web.get("/settings/webhooks")
    status = re.search(
        rf'data-testid="endpoint-status-{endpoint_id}">(.*?)</td>', listing.text, re.S
    )
    assert status is not None
    assert "Disabled" in status.group(1) and "failing for 3 days" in status.group(1)
    page = web.get(f"/settings/webhooks/{endpoint_id}")
    assert 'data-testid="disabled-reason">failing for 3 days<' in page.text
    assert 'data-testid="enable-endpoint"' in page.text
    on = web.post(f"/settings/webhooks/{endpoint_id}/enable", follow_redirects=True)
    assert "Endpoint enabled" in on.text
    assert 'data-testid="disabled-reason"' not in on.text
    assert 'data-testid="failing-since"' not in on.text


def test_only_admins_manage_webhooks(settings: Settings, db: Database) -> None:
    app = make_app(settings, db, allow_private=False)
    admin = signed_in(app, "alba@example.com")
    endpoint_id, _secret = add_endpoint(admin, "https://hooks.example.com/a", ["contact.created"])
    for email in ("beto@example.com", "sara@example.com"):
        web = signed_in(app, email)
        assert web.get("/settings/webhooks").status_code == 403
        assert web.get(f"/settings/webhooks/{endpoint_id}").status_code == 403
        assert web.post(f"/settings/webhooks/{endpoint_id}/rotate").status_code == 403
        assert 'href="/settings/webhooks"' not in web.get("/settings/profile").text
    with db.read(unscoped="test") as session:
        assert session.scalar(select(User.id).where(User.email == "beto@example.com"))
    # Another endpoint's delivery is not this one's.
    assert admin.get(f"/settings/webhooks/{endpoint_id + 1}").status_code == 404
