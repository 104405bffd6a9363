"""How inbox pages show things: WhatsApp formatting as HTML, delivery ticks, Meta's
failure codes in plain words, the service window's time left, map links."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

from puente.conversations.models import Conversation

# ```monospace``` first (nothing inside is formatted), then `inline code`, then the
# WhatsApp markers: *bold*, _italic_, ~strike~. A marker must hug its text.
_MONO = re.compile(r"```(.+?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_MARKERS = (
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])"), "strong"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])"), "em"),
    (re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])"), "del"),
)
_URL = re.compile(r"(https?://[^\s<>\"']+)")


def wa_format(text: str | None) -> Markup:
    """WhatsApp's formatting as safe HTML (everything else escaped)."""
    if not text:
        return Markup("")
    pieces: list[str] = []
    last = 0
    for m in _MONO.finditer(text):
        pieces.append(_inline(text[last : m.start()]))
        pieces.append(f'<code class="mono">{escape(m.group(1))}</code>')
        last = m.end()
    pieces.append(_inline(text[last:]))
    return Markup("".join(pieces).replace("\n", "<br>"))  # noqa: S704 (escaped above)


def _inline(text: str) -> str:
    out: list[str] = []
    last = 0
    for m in _CODE.finditer(text):
        out.append(_markers(text[last : m.start()]))
        out.append(f"<code>{escape(m.group(1))}</code>")
        last = m.end()
    out.append(_markers(text[last:]))
    return "".join(out)


def _markers(text: str) -> str:
    html = str(escape(text))
    for pattern, tag in _MARKERS:
        html = pattern.sub(f"<{tag}>\\1</{tag}>", html)
    return _URL.sub(
        lambda m: (
            f'<a href="{m.group(1)}" rel="noopener noreferrer" target="_blank">{m.group(1)}</a>'
        ),
        html,
    )


# -- ticks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    symbol: str
    label: str  # a msgid
    css: str


TICKS = {
    "queued": Tick("🕓", "Waiting to send", "pending"),
    "sending": Tick("🕓", "Sending", "pending"),
    "sent": Tick("✓", "Sent", "sent"),
    "delivered": Tick("✓✓", "Delivered", "delivered"),
    "read": Tick("✓✓", "Read", "read"),
    "played": Tick("✓✓", "Played", "read"),
    "failed": Tick("⚠", "Not delivered", "failed"),
    "cancelled": Tick("⊘", "Cancelled", "failed"),
}


def tick_for(status: str) -> Tick | None:
    return TICKS.get(status)


# Meta's error codes in plain words (msgids). Anything else shows Meta's own title.
FAILURE_REASONS = {
    131047: "More than 24 hours have passed since the customer last wrote: only a template "
    "can reach them now.",
    131026: "WhatsApp could not deliver it: the number may not use WhatsApp, or has an "
    "outdated app.",
    131049: "WhatsApp held this marketing message back to keep engagement healthy; try "
    "again later.",
    131050: "The customer has stopped marketing messages from this business.",
    131051: "WhatsApp does not support this message type.",
    131052: "WhatsApp could not download the customer's media.",
    131053: "The media file could not be uploaded: check its type and size.",
    131056: "Too many messages to this customer in a short time; wait a moment.",
    131042: "There is a problem with the business's payment method.",
    131031: "The business account is locked or restricted.",
    131021: "The recipient is the business's own number.",
    130429: "The number is sending faster than WhatsApp allows; it will retry.",
    131048: "Spam rate limit hit: WhatsApp is limiting messages from this number.",
    132000: "The template's variables do not match the template.",
    132001: "The template does not exist or is not approved in that language.",
    132015: "The template is paused for low quality.",
    132016: "The template is disabled.",
    368: "The business account is temporarily blocked for policy violations.",
    470: "More than 24 hours have passed since the customer last wrote: only a template "
    "can reach them now.",
    100: "WhatsApp refused a parameter of this message.",
    190: "The number's access token has expired; reconnect the number.",
}


def failure_reason(error: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(msgid for a known code, Meta's own words) for a failed message's error."""
    if not error:
        return None, None
    code = error.get("code")
    try:
        known = FAILURE_REASONS.get(int(code)) if code is not None else None
    except (TypeError, ValueError):
        known = None
    details = error.get("error_data", {}) if isinstance(error.get("error_data"), dict) else {}
    meta = details.get("details") or error.get("message") or error.get("title")
    return known, str(meta) if meta else None


# -- the service window ----------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    open: bool
    expires_at: dt.datetime | None
    hours: int
    minutes: int


def window_of(conversation: Conversation, now: dt.datetime) -> Window:
    expires = conversation.window_expires_at
    if expires is None or expires <= now:
        return Window(False, expires, 0, 0)
    left = int((expires - now).total_seconds())
    return Window(True, expires, left // 3600, (left % 3600) // 60)


def map_link(content: dict[str, Any]) -> str | None:
    try:
        lat = float(content["latitude"])
        lon = float(content["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


def tel_link(phone: str | None) -> str | None:
    if not phone:
        return None
    return "tel:" + quote("".join(ch for ch in phone if ch.isdigit() or ch == "+"))


SOURCE_LABELS = {
    "customer": "Customer",
    "agent": "Agent",
    "business_app": "Sent from the WhatsApp Business app",
    "bot": "Bot",
    "broadcast": "Broadcast",
    "api": "API",
    "history": "Imported from chat history",
}
SOURCE_ICONS = {
    "customer": "",
    "agent": "",
    "business_app": "📱",
    "bot": "🤖",
    "broadcast": "📣",
    "api": "⚙",
    "history": "🗄",
}
