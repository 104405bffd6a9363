"""Meta's rules for `POST /{phone-number-id}/messages`: body validation, rates and templates."""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass
from typing import Any

from puente.sandbox.errors import GraphError, invalid
from puente.sandbox.state import Template

MESSAGE_TYPES = {
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
}
MEDIA_TYPES = {"image", "video", "audio", "document", "sticker"}
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass
class SendRequest:
    to: str
    type: str
    payload: Any
    context_id: str | None
    biz_opaque_callback_data: str | None
    body: dict[str, Any]


def normalize_phone(raw: str) -> str:
    return re.sub(r"[\s+\-()]", "", raw)


def check_send_body(body: Any) -> SendRequest:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        raise invalid("The parameter messaging_product is required and must be 'whatsapp'")
    if body.get("recipient_type", "individual") != "individual":
        raise invalid("recipient_type must be 'individual'")
    to = body.get("to")
    if not isinstance(to, str) or not normalize_phone(to).isdigit():
        raise invalid("The parameter to is required and must be a phone number")
    digits = normalize_phone(to)
    if not 7 <= len(digits) <= 15:
        raise invalid(f"'{to}' is not a valid WhatsApp phone number")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise invalid(f"Unsupported message type '{kind}'")
    payload = body.get(kind)
    if kind == "contacts":
        check_contacts_body(body)
    elif not isinstance(payload, dict):
        raise invalid(f"The parameter {kind} is required and must be an object")
    else:
        _CHECKS.get(kind, _check_media)(payload, kind)
    context = body.get("context")
    context_id = None
    if context is not None:
        if not isinstance(context, dict) or not isinstance(context.get("message_id"), str):
            raise invalid("context.message_id must be a string")
        context_id = context["message_id"]
    opaque = body.get("biz_opaque_callback_data")
    if opaque is not None and (not isinstance(opaque, str) or len(opaque) > 512):
        raise invalid("biz_opaque_callback_data must be a string of at most 512 characters")
    return SendRequest(digits, kind, payload, context_id, opaque, body)


def _text(value: Any, name: str, limit: int, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value):
        raise invalid(f"The parameter {name} is required")
    if len(value) > limit:
        raise invalid(f"{name} is too long: {len(value)} characters, the maximum is {limit}")


def _check_text(p: dict[str, Any], _: str) -> None:
    _text(p.get("body"), "text.body", 4096)


def _check_media(p: dict[str, Any], kind: str) -> None:
    if ("id" in p) == ("link" in p):
        raise invalid(f"{kind} needs exactly one of id or link")
    if "caption" in p and kind in ("audio", "sticker"):
        raise invalid(f"caption is not supported for {kind}")
    if "voice" in p and (kind != "audio" or not isinstance(p["voice"], bool)):
        raise invalid("voice is a boolean of audio messages")
    _text(p.get("caption"), f"{kind}.caption", 1024, required=False)


def _check_location(p: dict[str, Any], _: str) -> None:
    for key in ("latitude", "longitude"):
        if not isinstance(p.get(key), int | float | str):
            raise invalid(f"location.{key} is required")


def _check_reaction(p: dict[str, Any], _: str) -> None:
    _text(p.get("message_id"), "reaction.message_id", 512)
    if not isinstance(p.get("emoji", ""), str):
        raise invalid("reaction.emoji must be a string")


def _check_template(p: dict[str, Any], _: str) -> None:
    _text(p.get("name"), "template.name", 512)
    language = p.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        raise invalid("The parameter template.language.code is required")
    if not isinstance(p.get("components", []), list):
        raise invalid("template.components must be an array")


def _check_interactive(p: dict[str, Any], _: str) -> None:
    kind = p.get("type")
    action = p.get("action")
    if not isinstance(action, dict):
        raise invalid("The parameter interactive.action is required")
    if kind in ("button", "list"):
        body = p.get("body")
        _text(
            body.get("text") if isinstance(body, dict) else None,
            "interactive.body.text",
            1024 if kind == "button" else 4096,
        )
    footer = p.get("footer")
    if footer is not None:
        _text(footer.get("text") if isinstance(footer, dict) else None, "footer.text", 60)
    if kind == "button":
        _check_buttons(action)
    elif kind == "list":
        _check_list(action)
    elif kind not in ("cta_url", "flow", "product", "product_list", "location_request_message"):
        raise invalid(f"Unsupported interactive type '{kind}'")


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise invalid("interactive.action.buttons must hold between 1 and 3 buttons")
    ids = set()
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        if not isinstance(reply, dict) or button.get("type") != "reply":
            raise invalid("Each button must be {'type':'reply','reply':{id,title}}")
        _text(reply.get("id"), "button reply.id", 256)
        _text(reply.get("title"), "button reply.title", 20)
        ids.add(reply["id"])
    if len(ids) != len(buttons):
        raise invalid("Button ids must be unique")


def _check_list(action: dict[str, Any]) -> None:
    _text(action.get("button"), "interactive.action.button", 20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise invalid("interactive.action.sections must hold between 1 and 10 sections")
    rows = 0
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("rows"), list):
            raise invalid("Each section needs rows")
        _text(section.get("title"), "section.title", 24, required=len(sections) > 1)
        for row in section["rows"]:
            if not isinstance(row, dict):
                raise invalid("Each row must be an object")
            _text(row.get("id"), "row.id", 200)
            _text(row.get("title"), "row.title", 24)
            _text(row.get("description"), "row.description", 72, required=False)
            rows += 1
    if not 1 <= rows <= 10:
        raise invalid(f"A list holds at most 10 rows across all sections, got {rows}")


_CHECKS = {
    "text": _check_text,
    "location": _check_location,
    "reaction": _check_reaction,
    "template": _check_template,
    "interactive": _check_interactive,
}


def check_contacts_body(body: dict[str, Any]) -> None:
    """`contacts` is the one type whose payload is an array."""
    cards = body.get("contacts")
    if not isinstance(cards, list) or not cards:
        raise invalid("contacts must be a non-empty array")
    for card in cards:
        name = card.get("name") if isinstance(card, dict) else None
        if not isinstance(name, dict) or not name.get("formatted_name"):
            raise invalid("Each contact needs name.formatted_name")


# -- templates --------------------------------------------------------------------------------
def expected_parameters(template: Template) -> dict[str, list[str]]:
    """Placeholders per component key ("header", "body", "button:<index>")."""
    out: dict[str, list[str]] = {}
    for comp in template.components:
        ctype = str(comp.get("type", "")).upper()
        if ctype == "HEADER":
            fmt = str(comp.get("format", "TEXT")).upper()
            if fmt in ("IMAGE", "VIDEO", "DOCUMENT", "LOCATION"):
                out["header"] = [fmt.lower()]
            else:
                out["header"] = _placeholders(str(comp.get("text", "")))
        elif ctype == "BODY":
            out["body"] = _placeholders(str(comp.get("text", "")))
        elif ctype == "BUTTONS":
            for index, button in enumerate(comp.get("buttons", [])):
                if str(button.get("type", "")).upper() == "URL":
                    out[f"button:{index}"] = _placeholders(str(button.get("url", "")))
    return {k: v for k, v in out.items() if v}


def _placeholders(text: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def check_template_parameters(template: Template, payload: dict[str, Any]) -> None:
    expected = expected_parameters(template)
    given: dict[str, list[dict[str, Any]]] = {}
    for comp in payload.get("components", []):
        if not isinstance(comp, dict):
            raise invalid("Each template component must be an object")
        ctype = str(comp.get("type", "")).lower()
        key = f"button:{comp.get('index')}" if ctype == "button" else ctype
        params = comp.get("parameters", [])
        if not isinstance(params, list):
            raise invalid("template component parameters must be an array")
        if ctype == "button" and key not in expected:
            continue  # quick-reply payloads are optional and not counted
        given[key] = params
    for key in sorted(set(expected) | set(given)):
        want, got = expected.get(key, []), given.get(key, [])
        if len(want) != len(got):
            raise GraphError(
                132000,
                f"{key}: number of localizable_params ({len(got)}) does not match the "
                f"expected number of params ({len(want)})",
            )
        if template.parameter_format == "NAMED" and key == "body":
            names = {p.get("parameter_name") for p in got}
            if names != set(want):
                raise GraphError(132000, f"body: expected named parameters {sorted(want)}")


# -- rates ------------------------------------------------------------------------------------
class RateLimiter:
    """Sliding window per number (130429; one second unless configured) and per recipient pair
    (131056). Meta counts inbound and outbound messages together against the number's mps."""

    def __init__(self) -> None:
        self._numbers: dict[str, collections.deque[float]] = {}
        self._pairs: dict[str, collections.deque[float]] = {}

    def check_throughput(self, number_id: str, mps: int, window: float = 1.0) -> None:
        stamps = self._numbers.setdefault(number_id, collections.deque())
        if not _admit(stamps, mps, window):
            raise GraphError(
                130429,
                f"Message failed to send because there were too many messages sent from this "
                f"phone number in a short period of time ({mps} messages per second)",
            )

    def record_inbound(self, number_id: str, window: float = 1.0) -> None:
        """A customer's message uses the number's throughput but is never refused for it."""
        stamps = self._numbers.setdefault(number_id, collections.deque())
        _prune(stamps, time.monotonic(), window)
        stamps.append(time.monotonic())

    def check_pair(self, number_id: str, to: str, limit: int, window: float) -> None:
        key = f"{number_id}:{to}"
        if not _admit(self._pairs.setdefault(key, collections.deque()), limit, window):
            raise GraphError(
                131056,
                "Message failed to send because there were too many messages sent from this "
                "phone number to the same phone number in a short period of time",
            )


def _prune(stamps: collections.deque[float], now: float, window: float) -> None:
    while stamps and now - stamps[0] >= window:
        stamps.popleft()


def _admit(stamps: collections.deque[float], limit: int, window: float) -> bool:
    now = time.monotonic()
    _prune(stamps, now, window)
    if len(stamps) >= limit:
        return False
    stamps.append(now)
    return True
