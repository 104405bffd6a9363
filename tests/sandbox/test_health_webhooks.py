"""The sandbox emits Meta's number-health and marketing-preference webhooks in Meta's shape
(whatsapp-protocol.md §13), and pywa, an independent implementation, reads
user_preferences as we do."""

from __future__ import annotations

import pytest
from pywa import WhatsApp, types

from tests.sandbox.conftest import NUMBER, WABA, Harness

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DISPLAY = "15550783881"


def test_quality_update_in_both_spellings_of_the_limit(sandbox: Harness) -> None:
    sandbox.control.post(
        f"/numbers/{NUMBER}/quality", json={"event": "DOWNGRADE", "limit": "TIER_2K"}
    )
    sandbox.control.post(
        f"/numbers/{NUMBER}/quality",
        json={"event": "FLAGGED", "limit": "TIER_2K", "shape": "legacy"},
    )
    first, second = sandbox.receiver.wait_changes("phone_number_quality_update", 2)
    assert first["waba_id"] == WABA and isinstance(first["entry"]["time"], int)
    assert "metadata" not in first["value"]
    assert first["value"] == {
        "display_phone_number": DISPLAY,
        "event": "DOWNGRADE",
        "old_limit": "TIER_UNLIMITED",
        "max_daily_conversations_per_business": "TIER_2K",
    }
    assert second["value"] == {
        "display_phone_number": DISPLAY,
        "event": "FLAGGED",
        "current_limit": "TIER_2K",
    }
    number = sandbox.graph.get(f"/{NUMBER}", params={"fields": "quality_rating"}).json()
    assert number["quality_rating"] == "RED"
    portfolio = sandbox.control.get("/portfolios").json()[0]
    assert portfolio["messaging_limit"] == "TIER_2K"


def test_name_update_has_metas_fields(sandbox: Harness) -> None:
    res = sandbox.control.post(
        f"/numbers/{NUMBER}/display-name",
        json={
            "decision": "REJECTED",
            "requested_verified_name": "X!",
            "rejection_reason": "NAME_FORMAT_UNACCEPTABLE",
        },
    )
    assert res.status_code == 200, res.text
    [change] = sandbox.receiver.wait_changes("phone_number_name_update", 1)
    assert change["value"] == {
        "display_phone_number": DISPLAY,
        "decision": "REJECTED",
        "requested_verified_name": "X!",
        "rejection_reason": "NAME_FORMAT_UNACCEPTABLE",
    }
    number = sandbox.graph.get(f"/{NUMBER}", params={"fields": "name_status"}).json()
    assert number["name_status"] == "REJECTED"
    refused = sandbox.control.post(f"/numbers/{NUMBER}/display-name", json={"decision": "MAYBE"})
    assert refused.status_code == 422


def test_user_preferences_parse_in_pywa(sandbox: Harness) -> None:
    res = sandbox.control.post(
        f"/numbers/{NUMBER}/customers/573001112233/marketing", json={"value": "stop"}
    )
    assert res.status_code == 200, res.text
    [change] = sandbox.receiver.wait_changes("user_preferences", 1)
    post = {"object": "whatsapp_business_account", "entry": [change["entry"]]}
    assert change["value"]["user_preferences"][0]["timestamp"] > 0
    wa = WhatsApp(phone_id=NUMBER, token="test-token", server=None)
    parsed = types.UserMarketingPreferences.from_update(client=wa, update=post)
    assert parsed.value.value == "stop" and parsed.from_user.wa_id == "573001112233"
    assert parsed.category.value == "marketing_messages"
    customers = {c["wa_id"]: c for c in sandbox.control.get("/customers").json()}
    assert customers["573001112233"]["marketing_opt_out"] is True
