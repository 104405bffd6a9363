"""Meta's reports about a number and its customers' choices that are not messages: the
number's quality and messaging limit, its display name's review, and a customer stopping
or resuming marketing messages from WhatsApp (`user_preferences`)."""

from __future__ import annotations

from typing import Any

from puente.sandbox import payloads
from puente.sandbox.engine import Sandbox
from puente.sandbox.state import COEXISTENCE_MPS, MESSAGING_LIMITS

UPGRADED_MPS = 1000
LIMIT_EVENTS = ("UPGRADE", "DOWNGRADE")


def do_quality_update(
    sb: Sandbox,
    number_id: str,
    event: str,
    limit: str | None = None,
    old_limit: str | None = None,
    shape: str = "current",
) -> dict[str, Any]:
    """Change the number's health as Meta would, and send phone_number_quality_update."""
    number = sb.world.numbers[number_id]
    waba = sb.world.wabas[number.waba_id]
    portfolio = sb.portfolio(waba.business_id)
    before = portfolio.messaging_limit
    now = limit or before
    if now in MESSAGING_LIMITS:
        portfolio.messaging_limit = now
    if event == "THROUGHPUT_UPGRADE":
        # Coexistence numbers stay at their fixed 20 msg/s (Meta's throughput page).
        number.mps = COEXISTENCE_MPS if number.coexistence else UPGRADED_MPS
    if event == "FLAGGED":
        number.quality_rating = "RED"
    elif event == "UNFLAGGED" and number.quality_rating == "RED":
        number.quality_rating = "YELLOW"
    if old_limit is None and event in LIMIT_EVENTS:
        old_limit = before
    value = payloads.quality_update_value(number, event, now, old_limit, shape)
    sb.sender.emit(waba.id, "phone_number_quality_update", value)
    return value


def do_name_update(
    sb: Sandbox,
    number_id: str,
    decision: str,
    requested_name: str | None = None,
    rejection_reason: str | None = None,
) -> dict[str, Any]:
    """Meta reviewed the display name: APPROVED makes it the number's verified name."""
    number = sb.world.numbers[number_id]
    name = requested_name or number.verified_name
    number.name_status = decision
    if decision == "APPROVED":
        number.verified_name = name
    value = payloads.name_update_value(number, decision, name, rejection_reason)
    sb.sender.emit(number.waba_id, "phone_number_name_update", value)
    return value


def do_marketing_preference(sb: Sandbox, number_id: str, wa_id: str, value: str) -> dict[str, Any]:
    """The customer taps Stop (or Resume) promotions for the business in WhatsApp."""
    number = sb.world.numbers[number_id]
    waba = sb.world.wabas[number.waba_id]
    customer = sb.customer(wa_id)
    customer.marketing_opt_out = value == "stop"
    update = payloads.user_preferences_value(number, waba, customer, value, sb.clock.now())
    sb.sender.emit(waba.id, "user_preferences", update)
    return update
