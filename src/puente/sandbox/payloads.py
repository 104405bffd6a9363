"""Builders for webhook `value` objects, exactly as Meta shapes them per field."""

from __future__ import annotations

from typing import Any

from puente.sandbox.state import ChatMessage, Customer, Number, Template, Waba, bsuid


def ts(seconds: float) -> str:
    return str(int(seconds))


def metadata(number: Number) -> dict[str, str]:
    return {"display_phone_number": number.display_phone_number, "phone_number_id": number.id}


def contact(waba: Waba, customer: Customer) -> dict[str, Any]:
    return {
        "profile": {"name": customer.name},
        "wa_id": customer.wa_id,
        "user_id": bsuid(waba.business_id, customer.wa_id),
    }


def message_object(msg: ChatMessage, *, include_to: bool = False) -> dict[str, Any]:
    """The `messages[]` / `message_echoes[]` item for one chat message."""
    obj: dict[str, Any] = {
        "from": msg.customer if msg.direction == "in" else "",
        "id": msg.wamid,
        "timestamp": ts(msg.timestamp),
        "type": msg.type,
    }
    obj.update(msg.content)
    if include_to:
        obj["to"] = msg.customer
    return obj


def inbound_value(
    number: Number, waba: Waba, customer: Customer, msg: ChatMessage
) -> dict[str, Any]:
    item = message_object(msg)
    item["from"] = customer.wa_id
    item["from_user_id"] = bsuid(waba.business_id, customer.wa_id)
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": metadata(number),
        "contacts": [contact(waba, customer)],
        "messages": [item],
    }
    return value


def echo_value(number: Number, waba: Waba, customer: Customer, msg: ChatMessage) -> dict[str, Any]:
    item = message_object(msg, include_to=True)
    item["from"] = number.display_phone_number
    item["to_user_id"] = bsuid(waba.business_id, customer.wa_id)
    return {
        "messaging_product": "whatsapp",
        "metadata": metadata(number),
        "contacts": [contact(waba, customer)],
        "message_echoes": [item],
    }


def status_value(
    number: Number,
    waba: Waba,
    customer: Customer,
    msg: ChatMessage,
    status: str,
    when: float,
    pricing: dict[str, Any] | None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": msg.wamid,
        "status": status,
        "timestamp": ts(when),
        "recipient_id": customer.wa_id,
        "recipient_user_id": bsuid(waba.business_id, customer.wa_id),
    }
    if pricing is not None and status != "failed":
        item["pricing"] = pricing
    if msg.biz_opaque_callback_data is not None:
        item["biz_opaque_callback_data"] = msg.biz_opaque_callback_data
    if status == "failed" and msg.error is not None:
        item["errors"] = [msg.error]
    return {
        "messaging_product": "whatsapp",
        "metadata": metadata(number),
        "contacts": [contact(waba, customer)],
        "statuses": [item],
    }


def state_sync_value(
    number: Number, phone: str, entry: dict[str, str] | None, when: float
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "contact", "action": "add" if entry else "remove"}
    item["contact"] = dict(entry, phone_number=phone) if entry else {"phone_number": phone}
    item["metadata"] = {"timestamp": ts(when)}
    return {"messaging_product": "whatsapp", "metadata": metadata(number), "state_sync": [item]}


def history_chunk_value(
    number: Number, phase: int, chunk_order: int, progress: int, threads: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": metadata(number),
        "history": [
            {
                "metadata": {"phase": phase, "chunk_order": chunk_order, "progress": progress},
                "threads": threads,
            }
        ],
    }


def history_declined_value(number: Number) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": metadata(number),
        "history": [
            {
                "errors": [
                    {
                        "code": 2593109,
                        "title": "History sync is turned off by the business from the "
                        "WhatsApp Business App",
                        "message": "History sync is turned off by the business from the "
                        "WhatsApp Business App",
                        "error_data": {"details": "History sharing is turned off by the business"},
                    }
                ]
            }
        ],
    }


def history_media_value(number: Number, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "metadata": metadata(number), "messages": items}


def template_status_value(template: Template, event: str, reason: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event": event,
        "message_template_id": int(template.id),
        "message_template_name": template.name,
        "message_template_language": template.language,
        "message_template_category": template.category,
        "reason": reason or "NONE",
    }
    if event == "PAUSED":
        value["other_info"] = {
            "title": "FIRST_PAUSE",
            "description": "Your template has been paused because of low quality.",
        }
    if event == "DISABLED":
        value["disable_info"] = {"disable_date": "now"}
    if event == "REJECTED":
        value["rejection_info"] = {
            "reason": reason or "INVALID_FORMAT",
            "recommendation": "Review the template against Meta's guidelines and resubmit.",
        }
    return value


def account_update_value(
    number: Number, waba: Waba, event: str, reason: str | None, initiated_by: str | None
) -> dict[str, Any]:
    value: dict[str, Any] = {"phone_number": number.display_phone_number, "event": event}
    if event == "PARTNER_REMOVED":
        value["waba_info"] = {"waba_id": waba.id, "owner_business_id": waba.business_id}
        if reason:
            value["disconnection_info"] = {
                "reason": reason,
                "initiated_by": initiated_by or "SYSTEM",
            }
    if event in ("ACCOUNT_OFFBOARDED", "ACCOUNT_RECONNECTED"):
        value = {"event": event, "phone_number": number.display_phone_number}
    return value


def user_preferences_value(
    number: Number, waba: Waba, customer: Customer, value: str, at: float
) -> dict[str, Any]:
    """`user_preferences`: the customer stopped or resumed marketing messages."""
    words = "stop" if value == "stop" else "resume"
    return {
        "messaging_product": "whatsapp",
        "metadata": metadata(number),
        "contacts": [contact(waba, customer)],
        "user_preferences": [
            {
                "wa_id": customer.wa_id,
                "detail": f"User requested to {words} marketing messages",
                "category": "marketing_messages",
                "value": value,
                "timestamp": int(at),
            }
        ],
    }


def quality_update_value(
    number: Number, event: str, limit: str, old_limit: str | None, shape: str
) -> dict[str, Any]:
    """`phone_number_quality_update`. `current_limit` is being replaced (February 2026) by
    `max_daily_conversations_per_business`; `shape` picks which of the two are sent."""
    value: dict[str, Any] = {"display_phone_number": number.display_phone_number, "event": event}
    if old_limit is not None:
        value["old_limit"] = old_limit
    if shape in ("legacy", "both"):
        # For THROUGHPUT_UPGRADE the old field named the throughput level.
        value["current_limit"] = "TIER_UNLIMITED" if event == "THROUGHPUT_UPGRADE" else limit
    if shape in ("current", "both"):
        value["max_daily_conversations_per_business"] = limit
    return value


def name_update_value(
    number: Number, decision: str, requested_name: str, rejection_reason: str | None
) -> dict[str, Any]:
    """`phone_number_name_update`: the display name's review."""
    return {
        "display_phone_number": number.display_phone_number,
        "decision": decision,
        "requested_verified_name": requested_name,
        "rejection_reason": rejection_reason or "NONE",
    }
