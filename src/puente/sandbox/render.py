"""Human-readable summaries of chat messages for the simulated phone page."""

from __future__ import annotations

from typing import Any

from puente.sandbox.state import ChatMessage

TICKS = {
    "accepted": "🕓",
    "held_for_quality_assessment": "🕓 retenido",
    "played": "✓✓ escuchado",
    "sent": "✓",
    "delivered": "✓✓",
    "read": "✓✓ leído",
    "failed": "⚠ falló",
}
ICONS = {"image": "📷", "video": "🎬", "audio": "🎤", "document": "📄", "sticker": "🏷"}


def summary(msg: ChatMessage) -> str:
    c: dict[str, Any] = msg.content.get(msg.type, {})
    if msg.revoked:
        return "🚫 Mensaje eliminado"
    if msg.type == "text":
        return str(c.get("body", ""))
    if msg.type in ICONS:
        label = c.get("caption") or c.get("filename") or msg.type
        return f"{ICONS[msg.type]} {label}"
    if msg.type == "location":
        return f"📍 {c.get('name') or ''} ({c.get('latitude')}, {c.get('longitude')})"
    if msg.type == "contacts":
        cards = msg.content.get("contacts", [])
        return "👤 " + ", ".join(str(card.get("name", {}).get("formatted_name")) for card in cards)
    if msg.type == "interactive":
        return _interactive(c)
    if msg.type == "button":
        return f"🔘 {c.get('text')}"
    if msg.type == "template":
        params = [
            str(p.get("text", p.get("type")))
            for comp in c.get("components", [])
            for p in comp.get("parameters", [])
        ]
        return f"📋 Plantilla {c.get('name')}" + (f": {', '.join(params)}" if params else "")
    if msg.type == "reaction":
        return f"Reaccionó {c.get('emoji') or '(quitada)'}"
    if msg.type == "edit":
        return "✏️ " + str(msg.content["edit"]["message"]["text"]["body"])
    if msg.type == "revoke":
        return "🚫 Eliminó un mensaje"
    if msg.type == "unsupported":
        return "⚠ Mensaje no compatible (131060)"
    return msg.type


def _interactive(c: dict[str, Any]) -> str:
    kind = c.get("type")
    if kind in ("button_reply", "list_reply"):
        return f"🔘 {c[kind].get('title')}"
    body = c.get("body", {}).get("text", "")
    if kind == "button":
        titles = [b["reply"]["title"] for b in c.get("action", {}).get("buttons", [])]
        return f"{body} [{' | '.join(titles)}]"
    if kind == "list":
        rows = [
            r["title"] for s in c.get("action", {}).get("sections", []) for r in s.get("rows", [])
        ]
        return f"{body} ☰ {', '.join(rows)}"
    return f"{body} ({kind})"


def bubble(msg: ChatMessage, *, viewer: str) -> dict[str, Any]:
    """What one bubble shows; `viewer` is customer or owner (whose messages sit on the right)."""
    mine = (msg.direction == "in") == (viewer == "customer")
    source = {"api": "Equipo (API)", "app": "App del negocio", "customer": "Cliente"}.get(
        msg.source, ""
    )
    return {
        "id": msg.wamid,
        "mine": mine,
        "text": summary(msg),
        "source": source,
        "tick": TICKS.get(msg.status, "") if msg.direction == "out" else "",
        "edited": msg.edited,
        "reaction": msg.reaction,
        "error": (msg.error or {}).get("title"),
        "can_edit": msg.source == "app" and msg.type == "text" and not msg.revoked,
        "can_revoke": msg.source == "app" and not msg.revoked,
        "quoted": (msg.content.get("context") or {}).get("id"),
        "choices": choices(msg) if not mine else [],
    }


def choices(msg: ChatMessage) -> list[dict[str, str]]:
    """The reply buttons or list rows of a business's interactive message, which the
    customer's phone lets them tap (what WhatsApp sends back: a button_reply or a
    list_reply with the choice's id and title)."""
    if msg.type != "interactive" or msg.direction != "out":
        return []
    c = msg.content.get("interactive") or msg.content
    action = c.get("action", {}) if isinstance(c, dict) else {}
    if c.get("type") == "button":
        return [
            {"kind": "button_reply", "id": b["reply"]["id"], "title": b["reply"]["title"]}
            for b in action.get("buttons", [])
        ]
    if c.get("type") == "list":
        return [
            {"kind": "list_reply", "id": r["id"], "title": r["title"]}
            for s in action.get("sections", [])
            for r in s.get("rows", [])
        ]
    return []
