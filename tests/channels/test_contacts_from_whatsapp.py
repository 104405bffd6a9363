"""What customers and the owner do in WhatsApp itself reaches the contact: a customer
stopping or resuming marketing messages (user_preferences) records their consent, and a
contact removed from the owner's address book (smb_app_state_sync "remove") loses the
name kept there and says it was removed."""

from __future__ import annotations

from typing import Any

from tests.channels.conftest import NUMBER, Coex
from tests.channels.test_channel_pages import signed_in
from tests.waiting import wait_until

CUSTOMER = "16505551234"  # Sheena Nelson
IN_BOOK = "573001112233"  # Lucía Gómez, in the demo number's address book


def _contact(coex: Coex, wa_id: str) -> dict[str, Any] | None:
    found = [
        c
        for c in coex.api.get("/contacts", params={"phone": "+" + wa_id}).json()["items"]
        if c["wa_id"] == wa_id
    ]
    return found[0] if found else None


def _consent(coex: Coex, contact_id: int) -> dict[str, Any]:
    res = coex.api.get(f"/contacts/{contact_id}/consent")
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_stop_and_resume_in_whatsapp_record_marketing_consent(coex: Coex) -> None:
    coex.onboard(import_history=False)
    res = coex.control.post(
        f"/numbers/{NUMBER}/customers/{CUSTOMER}/marketing", json={"value": "stop"}
    )
    assert res.status_code == 200, res.text
    contact = wait_until(lambda: _contact(coex, CUSTOMER), what="the customer's contact")
    consent = wait_until(
        lambda: (c := _consent(coex, contact["id"]))["state"] == "opt_out" and c,
        what="the opt-out",
    )
    assert consent["source"] == "meta_user_preferences"
    assert consent["marketing_allowed"] is False

    coex.control.post(f"/numbers/{NUMBER}/customers/{CUSTOMER}/marketing", json={"value": "resume"})
    consent = wait_until(
        lambda: (c := _consent(coex, contact["id"]))["state"] == "opt_in" and c,
        what="the opt-in",
    )
    assert [e["kind"] for e in consent["events"]] == ["opt_in", "opt_out"]
    assert consent["marketing_allowed"] is True


def test_removed_from_the_address_book_loses_the_books_name(coex: Coex) -> None:
    coex.onboard(import_history=False)
    book = coex.control.get(f"/numbers/{NUMBER}/contacts").json()
    assert IN_BOOK in book
    # The customer writes too, so the contact also has a WhatsApp profile name.
    coex.control.post(
        f"/numbers/{NUMBER}/inbound", json={"from": IN_BOOK, "name": "Lucía G.", "text": "Hola"}
    )
    contact = wait_until(
        lambda: (
            (c := _contact(coex, IN_BOOK)) and c["business_app_name"] and c["profile_name"] and c
        ),
        what="the synced contact",
    )
    assert contact["in_address_book"] is True
    assert contact["removed_from_address_book_at"] is None

    # Later than the sync's "add" (Meta's timestamps are whole seconds; latest wins).
    coex.control.post("/clock", json={"advance_seconds": 60})
    res = coex.control.delete(f"/numbers/{NUMBER}/contacts/{IN_BOOK}")
    assert res.status_code == 204, res.text
    removed = wait_until(
        lambda: (c := _contact(coex, IN_BOOK)) and c["in_address_book"] is False and c,
        what="the removal",
    )
    assert removed["business_app_name"] is None
    assert removed["profile_name"] == "Lucía G."
    assert removed["removed_from_address_book_at"] is not None
    assert removed["name"] == "Lucía G."
    page = signed_in(coex).get(f"/contacts/{removed['id']}").text
    assert 'data-testid="address-book-removed"' in page
    assert "Removed from the owner's address book on" in page

    coex.control.post("/clock", json={"advance_seconds": 60})
    coex.control.put(f"/numbers/{NUMBER}/contacts/{IN_BOOK}", json={"full_name": "Lucía Gómez"})
    back = wait_until(
        lambda: (c := _contact(coex, IN_BOOK)) and c["in_address_book"] and c,
        what="the contact added again",
    )
    assert back["business_app_name"] == "Lucía Gómez"
    assert back["removed_from_address_book_at"] is None
