"""Processing stored message webhooks makes a fixed number of SQL statements per message, on
top of a fixed number per processing step, however big the batch: no N+1 can creep into the
webhook path, the hottest one Puente has."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import pytest

from puente.automation.workflows import triggers
from puente.channels.models import ChannelMode
from puente.config import Settings
from puente.db.session import Database
from puente.ingest.process import do_process_new_events
from puente.ingest.store import do_store_webhooks
from puente.runtime import Runtime
from tests.factories import make_channel, make_workspace
from tests.ingest.helpers import PHONE_NUMBER_ID, dumps, envelope, messages_change, text_message
from tests.statements import counting


@dataclass(frozen=True)
class Pin:
    # Claiming the batch (ids and sizes, then bodies), the channel, its workspace, the one
    # UPDATE settling every event; SQLite also reads the channel's waiting edits once,
    # PostgreSQL try-locks the batch's customers in one statement. Since issue #17 the
    # step also writes its report facts in one INSERT, however many messages it holds.
    # Since outgoing webhooks, it reads the workspace's webhook endpoints once.
    step: int
    # A customer already known: their contact, the message's INSERT, the conversation's
    # UPDATE; PostgreSQL also looks for edits that arrived before the message, which on
    # SQLite (one writing process) the step read once.
    text: int
    # The same plus the media row the download worker takes.
    media: int
    # A first message also creates the contact, its identity on this number and the
    # conversation: each is looked up, inserted and read back (the contact looked up twice),
    # and whether their number was a contact merged into another (since contact merges).
    new_customer: int


# As measured for issue #15, through the worker's own step.
PINS = {
    "sqlite": Pin(step=8, text=3, media=4, new_customer=10),
    "postgresql": Pin(step=8, text=4, media=5, new_customer=10),
}


def image_message(wamid: str, sender: str) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": "1749416390",
        "type": "image",
        "image": {
            "id": "1391827364",
            "mime_type": "image/jpeg",
            "sha256": "Gr3c7Yfz0mBKJ0b9gD1tq7gqPAtpo0P3YdAbjMzAtCk=",
            "caption": "¿Lo tienen en azul?",
        },
    }


def webhook(message: dict[str, Any]) -> bytes:
    """One message per webhook, as Meta sends them."""
    sender = message["from"]
    return dumps(envelope(messages_change([message], sender=sender, name=f"Cliente {sender}")))


def customer(n: int) -> str:
    return f"52155120{n:05d}"


def process(db: Database, runtime: Runtime, bodies: list[bytes]) -> list[str]:
    """Store the webhooks as the endpoint does, then count one processing step over them."""
    with db.unit_of_work(unscoped="test") as session:
        do_store_webhooks(session, bodies)
    with counting(db) as statements, db.unit_of_work(unscoped="test") as session:
        assert do_process_new_events(session, runtime, limit=len(bodies)) == len(bodies)
    return statements


@pytest.mark.parametrize("customers", [4, 40])
def test_message_webhooks_cost_a_fixed_number_of_statements_each(
    settings: Settings, db: Database, customers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The enabled workflows are read once per INDEX_SECONDS: on a slow machine the burst
    # outlasts that, and the re-read (two statements) would count as the messages' cost.
    monkeypatch.setattr(triggers, "INDEX_SECONDS", 3600.0)
    runtime = Runtime.from_settings(settings, db)
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session)
        make_channel(session, ws, phone_number_id=PHONE_NUMBER_ID, mode=ChannelMode.CLOUD_API)
    # Half the customers wrote before; in the burst measured, each of them sends two texts,
    # and each of the others writes for the first time, a text and then a picture.
    returning = range(customers // 2)
    first_time = range(customers // 2, customers)
    process(
        db,
        runtime,
        [webhook(text_message(f"wamid.before{n}", "Hola", customer(n))) for n in returning],
    )
    burst = []
    for n in returning:
        burst += [
            webhook(text_message(f"wamid.r{n}a", "¿Siguen abiertos?", customer(n))),
            webhook(text_message(f"wamid.r{n}b", "Paso en una hora", customer(n))),
        ]
    for n in first_time:
        burst += [
            webhook(text_message(f"wamid.f{n}a", "Buenas tardes", customer(n))),
            webhook(image_message(f"wamid.f{n}b", customer(n))),
        ]

    statements = process(db, runtime, burst)

    pin = PINS[db.engine.dialect.name]
    texts, pictures, new = len(returning) * 2 + len(first_time), len(first_time), len(first_time)
    expected = pin.step + texts * pin.text + pictures * pin.media + new * pin.new_customer
    made = collections.Counter(" ".join(s.split())[:110] for s in statements)
    assert len(statements) == expected, (
        f"processing {len(burst)} message webhooks made {len(statements)} SQL statements, "
        f"not the {expected} pinned ({len(statements) / len(burst):.2f} per message instead "
        f"of {expected / len(burst):.2f}). Every inbound message pays for this. If the change "
        "is meant (a query the path now needs, or one it saves), update PINS with the reason; "
        "if the count grew with the batch, something now runs a query per message that the "
        "step could make once. The statements, most frequent first:\n"
        + "\n".join(f"{n:4d} x {s}" for s, n in made.most_common())
    )
