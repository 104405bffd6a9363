"""The people around the number: customers writing in, the owner's phone running the Business
app (echoes, edits, contacts, history consent) and Meta's account events."""

from __future__ import annotations

from typing import Any

from puente.sandbox import history, payloads
from puente.sandbox.engine import DAY, ENTRY_POINT_WINDOW, WINDOW, Sandbox
from puente.sandbox.errors import GraphError, error_item, invalid
from puente.sandbox.media import sample_media
from puente.sandbox.state import ChatMessage, Number

MEDIA = ("image", "video", "audio", "document", "sticker")
INBOUND_TYPES = {
    "text",
    *MEDIA,
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "edit",
    "revoke",
    "unsupported",
    "system",
}
OWNER_TYPES = {"text", *MEDIA, "location", "contacts", "reaction", "edit", "revoke"}
EDIT_LIMIT = 15 * 60.0
REVOKE_LIMIT = 2 * DAY
DISCONNECT_REASONS = {
    "ACCOUNT_DISCONNECTED",
    "BUSINESS_DOWNGRADE",
    "CHANGE_NUMBER",
    "COMPANION_INACTIVITY",
    "PRIMARY_INACTIVITY",
    "USER_RE_REGISTERED",
}
ACCOUNT_EVENTS = {"PARTNER_REMOVED", "ACCOUNT_OFFBOARDED", "ACCOUNT_RECONNECTED"}


class PeopleError(ValueError):
    """A simulated person cannot do that (control API answers 4xx)."""


def access_number(sb: Sandbox, number_id: str) -> Number:
    number = sb.world.numbers.get(number_id)
    if number is None:
        raise PeopleError(f"unknown phone number id {number_id}")
    return number


def _content(
    sb: Sandbox, number: Number, kind: str, payload: Any, media: dict[str, Any] | None
) -> dict[str, Any]:
    if kind in MEDIA:
        media = media or {}
        stored = sample_media(
            sb, kind, media.get("data_b64"), media.get("mime_type"), media.get("filename")
        )
        obj: dict[str, Any] = {
            "id": stored.id,
            "mime_type": stored.mime_type,
            "sha256": stored.sha256,
        }
        for key in ("caption", "filename", "voice", "animated"):
            if key in media:
                obj[key] = media[key]
        if kind == "audio":
            obj.setdefault("voice", False)
        if kind == "sticker":
            obj.setdefault("animated", False)
        return {kind: obj}
    if kind == "unsupported":
        return {
            "unsupported": {"type": (payload or {}).get("type", "unknown")},
            "errors": [
                error_item(
                    131060,
                    "Message sent from a companion device not supported by Cloud API coexistence",
                )
            ],
        }
    if kind == "contacts":
        if not isinstance(payload, list) or not payload:
            raise PeopleError("contacts needs a non-empty list of contact cards")
        return {"contacts": payload}
    if not isinstance(payload, dict):
        raise PeopleError(f"{kind} needs a payload object")
    if kind == "text" and not payload.get("body"):
        raise PeopleError("text needs a body")
    return {kind: payload}


def _apply_edit_or_revoke(
    sb: Sandbox, number: Number, wa_id: str, kind: str, payload: Any, direction: str
) -> dict[str, Any]:
    original_id = (payload or {}).get("original_message_id")
    target = sb.world.messages.get(str(original_id))
    if (
        target is None
        or target.number_id != number.id
        or target.customer != wa_id
        or target.direction != direction
    ):
        raise PeopleError(f"{kind}: original_message_id is not a message of this sender")
    age = sb.clock.now() - target.timestamp
    if kind == "edit":
        if age > EDIT_LIMIT:
            raise PeopleError("messages can only be edited within 15 minutes")
        text = (payload.get("message") or {}).get("text", {}).get("body") or payload.get("text")
        if not text or target.type != "text":
            raise PeopleError("only text messages can be edited, with a new text")
        target.content = {"text": {"body": text}}
        target.edited = True
        return {
            "edit": {
                "original_message_id": target.wamid,
                "message": {"type": "text", "text": {"body": text}},
            }
        }
    if age > REVOKE_LIMIT:
        raise PeopleError("messages can only be revoked within 2 days")
    target.revoked = True
    return {"revoke": {"original_message_id": target.wamid}}


def do_inbound(
    sb: Sandbox,
    number_id: str,
    wa_id: str,
    kind: str,
    payload: Any = None,
    *,
    name: str | None = None,
    media: dict[str, Any] | None = None,
    context_id: str | None = None,
    forwarded: bool = False,
    referral: dict[str, Any] | None = None,
) -> ChatMessage:
    """A customer sends something to the business number."""
    if kind not in INBOUND_TYPES:
        raise PeopleError(f"unknown inbound type {kind}; one of {sorted(INBOUND_TYPES)}")
    number = access_number(sb, number_id)
    with sb.store.lock:
        customer = sb.customer(wa_id, name)
        if name:
            customer.name = name
        if kind in ("edit", "revoke"):
            content = _apply_edit_or_revoke(sb, number, wa_id, kind, payload, "in")
        else:
            content = _content(sb, number, kind, payload, media)
        if context_id:
            quoted = sb.world.messages.get(context_id)
            if quoted is None:
                raise PeopleError("context_id does not refer to a known message")
            sender = number.display_phone_number if quoted.direction == "out" else wa_id
            content["context"] = {"from": sender, "id": context_id}
        elif forwarded:
            content["context"] = {"forwarded": True}
        if referral is not None:
            content["referral"] = _referral(referral)
        now = sb.clock.now()
        msg = ChatMessage(
            wamid=sb.store.new_wamid(),
            number_id=number.id,
            customer=wa_id,
            direction="in",
            source="customer",
            type=kind,
            content=content,
            timestamp=now,
            status="received",
            context_id=context_id,
        )
        if kind == "reaction":
            target = sb.world.messages.get(str((payload or {}).get("message_id")))
            if target is not None:
                target.reaction = payload.get("emoji") or None
        sb.add_message(msg)
        conv = sb.conversation(number.id, wa_id)
        conv.window_until = now + WINDOW
        if referral is not None:
            conv.entry_point_until = now + ENTRY_POINT_WINDOW
    if number.connection == "connected":
        # Meta counts inbound and outbound messages together against the number's throughput.
        sb.limiter.record_inbound(number.id, sb.config.throughput_window)
        waba = sb.world.wabas[number.waba_id]
        sb.emit_value(number, "messages", payloads.inbound_value(number, waba, customer, msg))
    return msg


def _referral(given: dict[str, Any]) -> dict[str, Any]:
    referral = {
        "source_url": "https://fb.me/sandbox-ad",
        "source_id": "120000000000001",
        "source_type": "ad",
        "headline": "Envío gratis esta semana",
        "body": "Escríbenos por WhatsApp",
        "media_type": "image",
        "image_url": "https://example.com/ad.png",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
    }
    referral.update(given)
    return referral


def do_owner_send(
    sb: Sandbox,
    number_id: str,
    to: str,
    kind: str,
    payload: Any = None,
    *,
    media: dict[str, Any] | None = None,
    context_id: str | None = None,
) -> ChatMessage:
    """The owner sends from the Business app: an `smb_message_echoes` webhook, no window change."""
    if kind not in OWNER_TYPES:
        raise PeopleError(f"the Business app cannot send {kind} here; one of {sorted(OWNER_TYPES)}")
    number = access_number(sb, number_id)
    with sb.store.lock:
        customer = sb.customer(to)
        if kind in ("edit", "revoke"):
            content = _apply_edit_or_revoke(sb, number, to, kind, payload, "out")
        else:
            content = _content(sb, number, kind, payload, media)
        if context_id:
            content["context"] = {"from": to, "id": context_id}
        msg = ChatMessage(
            wamid=sb.store.new_wamid(),
            number_id=number.id,
            customer=to,
            direction="out",
            source="app",
            type=kind,
            content=content,
            timestamp=sb.clock.now(),
            status="sent",
            context_id=context_id,
        )
        sb.add_message(msg)
    if number.connection == "connected":
        waba = sb.world.wabas[number.waba_id]
        sb.emit_value(
            number, "smb_message_echoes", payloads.echo_value(number, waba, customer, msg)
        )
    return msg


def do_set_contact(
    sb: Sandbox, number_id: str, phone: str, full_name: str, first_name: str | None
) -> None:
    number = access_number(sb, number_id)
    if not phone.isdigit():
        raise PeopleError("phone_number must hold digits only")
    entry = {"full_name": full_name, "first_name": first_name or full_name.split(" ")[0]}
    with sb.store.lock:
        number.address_book[phone] = entry
    _emit_contact(sb, number, phone, entry)


def do_remove_contact(sb: Sandbox, number_id: str, phone: str) -> None:
    number = access_number(sb, number_id)
    with sb.store.lock:
        if number.address_book.pop(phone, None) is None:
            raise PeopleError(f"{phone} is not in the address book")
    _emit_contact(sb, number, phone, None)


def _emit_contact(sb: Sandbox, number: Number, phone: str, entry: dict[str, str] | None) -> None:
    # Live changes flow once the contacts sync has been requested, as at Meta.
    if "smb_app_state_sync" in number.syncs and number.connection == "connected":
        sb.emit_value(
            number,
            "smb_app_state_sync",
            payloads.state_sync_value(number, phone, entry, sb.clock.now()),
        )


def do_request_sync(sb: Sandbox, number: Number, body: Any) -> dict[str, Any]:
    """`POST /{phone-number-id}/smb_app_data`."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        raise invalid("The parameter messaging_product is required and must be 'whatsapp'")
    sync_type = body.get("sync_type")
    if sync_type not in ("smb_app_state_sync", "history"):
        raise invalid("sync_type must be 'smb_app_state_sync' or 'history'")
    if not number.coexistence:
        raise invalid(
            "smb_app_data is only available for numbers onboarded from the WhatsApp Business app"
        )
    if sync_type in number.syncs:
        raise GraphError(
            100,
            f"{sync_type} was already requested for this onboarding; "
            "offboard and onboard again to sync again",
            message=f"(#100) Sync already requested: {sync_type}",
        )
    if sb.clock.now() > number.onboarded_at + DAY:
        raise GraphError(
            100,
            "Syncs must be requested within 24 hours of onboarding",
            message="(#100) Sync window expired",
        )
    request_id = sb.new_request_id()
    number.syncs[sync_type] = request_id
    if sync_type == "smb_app_state_sync":
        sb.later(0.05, lambda: _emit_address_book(sb, number))
    elif number.history_sharing == "undecided":
        number.history_pending = True
    else:
        sb.later(0.05, lambda: history.emit_history(sb, number))
    return {"messaging_product": "whatsapp", "request_id": request_id}


def _emit_address_book(sb: Sandbox, number: Number) -> None:
    now = sb.clock.now()
    items = [
        payloads.state_sync_value(number, phone, entry, now)["state_sync"][0]
        for phone, entry in sorted(number.address_book.items())
    ]
    for start in range(0, len(items), 500):
        value = payloads.state_sync_value(number, "", None, now)
        value["state_sync"] = items[start : start + 500]
        sb.emit_value(number, "smb_app_state_sync", value)


def do_history_decision(sb: Sandbox, number_id: str, share: bool) -> None:
    """The owner accepts or declines sharing chat history (in the Business app)."""
    number = access_number(sb, number_id)
    number.history_sharing = "accepted" if share else "declined"
    if number.history_pending:
        number.history_pending = False
        history.emit_history(sb, number)


def do_account_event(
    sb: Sandbox,
    number_id: str,
    event: str,
    reason: str | None = None,
    initiated_by: str | None = None,
) -> dict[str, Any]:
    number = access_number(sb, number_id)
    if event not in ACCOUNT_EVENTS:
        raise PeopleError(f"event must be one of {sorted(ACCOUNT_EVENTS)}")
    if reason is not None and reason not in DISCONNECT_REASONS:
        raise PeopleError(f"reason must be one of {sorted(DISCONNECT_REASONS)}")
    if initiated_by not in (None, "USER", "SYSTEM"):
        raise PeopleError("initiated_by must be USER or SYSTEM")
    number.connection = {
        "PARTNER_REMOVED": "disconnected",
        "ACCOUNT_OFFBOARDED": "offboarded",
        "ACCOUNT_RECONNECTED": "connected",
    }[event]
    waba = sb.world.wabas[number.waba_id]
    value = payloads.account_update_value(number, waba, event, reason, initiated_by)
    sb.sender.emit(waba.id, "account_update", value)
    return value
