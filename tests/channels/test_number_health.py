"""The number's health webhooks from the sandbox (phone_number_quality_update and
phone_number_name_update) update its messaging limit, throughput, quality and display
name, shown on the channel page and in the API as Meta reports them."""

from __future__ import annotations

from typing import Any

from tests.channels.conftest import NUMBER, Coex
from tests.channels.test_channel_pages import signed_in
from tests.waiting import wait_until


def _channel(coex: Coex, channel_id: int) -> dict[str, Any]:
    res = coex.api.get(f"/channels/{channel_id}")
    assert res.status_code == 200, res.text
    return dict(res.json())


def _quality(coex: Coex, number_id: str, **body: Any) -> dict[str, Any]:
    res = coex.control.post(f"/numbers/{number_id}/quality", json=body)
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_messaging_limit_and_quality_follow_metas_webhooks(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    sent = _quality(coex, NUMBER, event="DOWNGRADE", limit="TIER_2K")
    assert sent == {
        "display_phone_number": coex.sandbox.world.numbers[NUMBER].display_phone_number,
        "event": "DOWNGRADE",
        "old_limit": "TIER_UNLIMITED",
        "max_daily_conversations_per_business": "TIER_2K",
    }
    channel = wait_until(
        lambda: (c := _channel(coex, channel_id))["messaging_limit_tier"] == "2000" and c,
        what="the new messaging limit",
    )
    assert channel["quality_event"] == "DOWNGRADE"

    # Before February 2026 Meta wrote the limit in current_limit only.
    _quality(coex, NUMBER, event="FLAGGED", limit="TIER_1K", shape="legacy")
    channel = wait_until(
        lambda: (c := _channel(coex, channel_id))["quality_rating"] == "RED" and c,
        what="the flag",
    )
    assert channel["messaging_limit_tier"] == "1000"
    web = signed_in(coex)
    page = web.get(f"/channels/{channel_id}").text
    assert 'data-testid="quality" data-rating="RED"' in page
    assert "flagged by Meta" in page
    assert 'data-tier="1000"' in page and "1,000 people a day" in page

    _quality(coex, NUMBER, event="UNFLAGGED", limit="TIER_1K", shape="both")
    wait_until(
        lambda: _channel(coex, channel_id)["quality_event"] == "UNFLAGGED", what="the unflag"
    )
    page = web.get(f"/channels/{channel_id}").text
    assert "Medium or high (no longer flagged)" in page
    assert "flagged by Meta" not in page


def test_throughput_upgrade_raises_the_lane_pace_except_for_coexistence(coex: Coex) -> None:
    coex_id = coex.onboard(import_history=False)
    started = coex.start("new_number", "+1 555 010 0300", business_name="Sucursal Norte")
    cloud_id = coex.poll(started["id"])["channel_id"]
    cloud_number = next(
        n.id for n in coex.sandbox.world.numbers.values() if n.display_phone_number == "15550100300"
    )
    assert _channel(coex, cloud_id)["throughput_mps"] == 80
    _quality(coex, cloud_number, event="THROUGHPUT_UPGRADE", shape="both")
    _quality(coex, NUMBER, event="THROUGHPUT_UPGRADE")
    wait_until(
        lambda: _channel(coex, cloud_id)["throughput_mps"] == 1000, what="the higher throughput"
    )
    wait_until(
        lambda: _channel(coex, coex_id)["quality_event"] == "THROUGHPUT_UPGRADE",
        what="the coexistence number's event",
    )
    assert _channel(coex, coex_id)["throughput_mps"] == 20
    assert 'data-testid="throughput">1000' in signed_in(coex).get(f"/channels/{cloud_id}").text


def test_display_name_review_is_shown(coex: Coex) -> None:
    channel_id = coex.onboard(import_history=False)
    res = coex.control.post(
        f"/numbers/{NUMBER}/display-name",
        json={
            "decision": "REJECTED",
            "requested_verified_name": "La Esquina 2x1!!",
            "rejection_reason": "NAME_FORMAT_UNACCEPTABLE",
        },
    )
    assert res.status_code == 200, res.text
    channel = wait_until(
        lambda: (c := _channel(coex, channel_id))["name_status"] and c, what="the review"
    )
    assert channel["name_status"] == "REJECTED"
    assert channel["requested_name"] == "La Esquina 2x1!!"
    assert channel["name_rejection_reason"] == "NAME_FORMAT_UNACCEPTABLE"
    web = signed_in(coex)
    page = web.get(f"/channels/{channel_id}").text
    assert 'data-testid="name-status" data-status="REJECTED"' in page
    assert "NAME_FORMAT_UNACCEPTABLE" in page

    coex.control.post(
        f"/numbers/{NUMBER}/display-name",
        json={"decision": "APPROVED", "requested_verified_name": "La Esquina"},
    )
    channel = wait_until(
        lambda: (c := _channel(coex, channel_id))["name_status"] == "APPROVED" and c,
        what="the approval",
    )
    assert channel["requested_name"] == "La Esquina"
    assert channel["name_rejection_reason"] is None
    assert coex.sandbox.world.numbers[NUMBER].verified_name == "La Esquina"
    page = web.get(f"/channels/{channel_id}").text
    assert "“La Esquina”: <span>Approved</span>" in page
