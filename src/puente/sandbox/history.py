"""Synthetic chat history of the owner's Business app and its emission as `history` webhooks.

Phases follow Meta: 0 = day 0-1, 1 = day 1-90, 2 = day 90-180. Chunks of one phase arrive out
of order (with `chunk_order` to sort them) and the chunk with progress 100 always comes last.
Media arrive as `media_placeholder`, followed by media details only for the last 14 days.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from puente.sandbox import payloads
from puente.sandbox.state import Number

if TYPE_CHECKING:
    from puente.sandbox.engine import Sandbox

DAY = 86400.0
HORIZON_DAYS = 180
MEDIA_DAYS = 14

FIRST = [
    "María",
    "José",
    "Lucía",
    "Carlos",
    "Valentina",
    "Andrés",
    "Camila",
    "Diego",
    "Sofía",
    "Javier",
    "Daniela",
    "Mateo",
    "Isabela",
    "Santiago",
    "Paula",
    "Felipe",
    "Gabriela",
    "Alejandro",
    "Natalia",
    "Ricardo",
]
LAST = [
    "García",
    "Rodríguez",
    "Martínez",
    "López",
    "Gómez",
    "Pérez",
    "Sánchez",
    "Ramírez",
    "Torres",
    "Flores",
    "Rivera",
    "Morales",
    "Castro",
    "Ortiz",
    "Vargas",
    "Rojas",
]
CUSTOMER_LINES = [
    "Hola, ¿tienen disponible la talla M?",
    "¿Cuál es el horario de hoy?",
    "Buenas tardes, quiero hacer un pedido",
    "¿Hacen envíos a domicilio?",
    "Gracias, ya me llegó el paquete 🙌",
    "¿Cuánto cuesta el envío a Medellín?",
    "¿Aceptan pago con tarjeta?",
    "Perfecto, entonces paso mañana",
    "¿Me pueden enviar el catálogo?",
    "Necesito cambiar la dirección de entrega",
    "¿Todavía tienen la promoción?",
    "Muchas gracias por la atención",
    "¿A qué hora abren el sábado?",
]
BUSINESS_LINES = [
    "¡Hola! Sí, claro, ¿en qué color la quieres?",
    "Hoy abrimos de 9:00 a 18:00",
    "Con gusto, ¿me confirmas tu dirección?",
    "Sí, el envío es gratis desde $100.000",
    "Tu pedido sale hoy mismo 📦",
    "Te comparto el catálogo actualizado",
    "Aceptamos tarjeta, transferencia y efectivo",
    "¡Gracias a ti! Que tengas buen día",
    "Listo, ya actualicé la dirección",
    "La promoción sigue hasta el domingo",
]
STATUSES_OUT = ["READ", "READ", "READ", "DELIVERED", "SENT", "PLAYED", "ERROR", "PENDING"]
MEDIA_KINDS = [
    ("image", "image/jpeg", "Foto del producto"),
    ("document", "application/pdf", "Factura"),
    ("audio", "audio/ogg", None),
    ("video", "video/mp4", "Video del pedido"),
]


def customer_number(rng: random.Random) -> str:
    return "57" + "3" + "".join(str(rng.randrange(10)) for _ in range(9))


def do_generate(
    sb: Sandbox,
    number: Number,
    chats: int,
    messages: int,
    seed: int,
    address_book_share: float = 0.7,
) -> dict[str, int]:
    """Replace the number's app history with `chats` 1:1 chats of `messages` messages each."""
    rng = random.Random(seed)
    now = sb.clock.now()
    threads: list[dict[str, Any]] = []
    with sb.store.lock:
        for _ in range(chats):
            wa_id = customer_number(rng)
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            sb.customer(wa_id, name)
            if rng.random() < address_book_share:
                number.address_book[wa_id] = {"full_name": name, "first_name": name.split(" ")[0]}
            threads.append(
                {"id": wa_id, "messages": _thread(sb, rng, number, wa_id, messages, now)}
            )
        sb.world.history[number.id] = threads
    return {"chats": chats, "messages": chats * messages}


def _thread(
    sb: Sandbox, rng: random.Random, number: Number, wa_id: str, count: int, now: float
) -> list[dict[str, Any]]:
    # Spread messages over 180 days, a few in the last day so every phase has content.
    stamps = sorted(now - rng.random() ** 1.6 * HORIZON_DAYS * DAY for _ in range(count))
    out = []
    for stamp in stamps:
        mine = rng.random() < 0.45
        msg: dict[str, Any] = {
            "from": number.display_phone_number if mine else wa_id,
            "id": sb.store.new_wamid(),
            "timestamp": str(int(stamp)),
        }
        if mine:
            msg["to"] = wa_id
        if rng.random() < 0.1:
            kind, mime, caption = rng.choice(MEDIA_KINDS)
            msg["type"] = "media_placeholder"
            msg["_media"] = {"kind": kind, "mime_type": mime, "caption": caption}
        else:
            msg["type"] = "text"
            msg["text"] = {"body": rng.choice(BUSINESS_LINES if mine else CUSTOMER_LINES)}
        msg["history_context"] = {"status": rng.choice(STATUSES_OUT) if mine else "READ"}
        out.append(msg)
    return out


def phase_of(age_seconds: float) -> int:
    if age_seconds < DAY:
        return 0
    return 1 if age_seconds < 90 * DAY else 2


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def build_chunks(sb: Sandbox, number: Number) -> list[tuple[int, int, list[dict[str, Any]], int]]:
    """(phase, chunk_order, threads, message count) in chunk order, phases 0, 1, 2."""
    now = sb.clock.now()
    size = sb.config.history_chunk_messages
    chunks: list[tuple[int, int, list[dict[str, Any]], int]] = []
    for phase in (0, 1, 2):
        current: list[dict[str, Any]] = []
        count = 0
        order = 0
        for thread in sb.world.history.get(number.id, []):
            msgs = [
                _public(m)
                for m in thread["messages"]
                if phase_of(now - float(m["timestamp"])) == phase
            ]
            while msgs:
                room = size - count
                current.append({"id": thread["id"], "messages": msgs[:room]})
                count += len(msgs[:room])
                msgs = msgs[room:]
                if count >= size:
                    order += 1
                    chunks.append((phase, order, current, count))
                    current, count = [], 0
        if current:
            order += 1
            chunks.append((phase, order, current, count))
    return chunks


def emit_history(sb: Sandbox, number: Number) -> None:
    """Send the whole history as Meta would, or the 2593109 error if the owner declined."""
    if number.history_sharing == "declined":
        sb.emit_value(number, "history", payloads.history_declined_value(number))
        return
    if number.id not in sb.world.history:
        do_generate(sb, number, chats=8, messages=12, seed=int(number.id) % 1000)
    chunks = build_chunks(sb, number)
    total = sum(c[3] for c in chunks) or 1
    rng = random.Random(number.id)
    done = 0
    values: list[tuple[int, dict[str, Any]]] = []
    for phase, order, threads, count in chunks:
        done += count
        progress = 100 if done >= total else min(99, done * 100 // total)
        values.append(
            (phase, payloads.history_chunk_value(number, phase, order, progress, threads))
        )
    final = values.pop() if values else None
    for phase in (0, 1, 2):
        group = [v for p, v in values if p == phase]
        rng.shuffle(group)
        for value in group:
            sb.emit_value(number, "history", value)
    if final is not None:
        sb.emit_value(number, "history", final[1])
    _emit_media(sb, number)


def _emit_media(sb: Sandbox, number: Number) -> None:
    from puente.sandbox.media import sample_media

    cutoff = sb.clock.now() - MEDIA_DAYS * DAY
    items: list[dict[str, Any]] = []
    for thread in sb.world.history.get(number.id, []):
        for msg in thread["messages"]:
            hint = msg.get("_media")
            if hint is None or float(msg["timestamp"]) < cutoff:
                continue
            media = sample_media(sb, hint["kind"], None, None, None)
            obj: dict[str, Any] = {
                "id": media.id,
                "mime_type": media.mime_type,
                "sha256": media.sha256,
            }
            if hint.get("caption"):
                obj["caption"] = hint["caption"]
            item = {k: msg[k] for k in ("from", "id", "timestamp") if k in msg}
            if "to" in msg:
                item["to"] = msg["to"]
            item.update({"type": hint["kind"], hint["kind"]: obj})
            items.append(item)
    for start in range(0, len(items), 50):
        sb.emit_value(
            number, "history", payloads.history_media_value(number, items[start : start + 50])
        )
