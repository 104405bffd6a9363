"""A delivery's body is JSON text built around the event's data, serialized once for all
endpoints: byte for byte what `json.dumps` makes of the whole payload, so a receiver sees
the same body however it was built."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from puente.integrations.webhooks.deliveries import payload_of, payload_text

AT = dt.datetime(2026, 12, 7, 5, 10, 11, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


@pytest.mark.parametrize(
    ("data", "sequence"),
    [
        ({"text": "¿Tienen la talla M en rojo? 👕", "contact": {"name": None}, "n": 1.5}, 7),
        ({}, None),
        ({"quote": 'a "b" \\ c\n', "list": [1, "dos", {"tres": True}]}, 1),
    ],
)
def test_the_body_is_what_json_dumps_makes_of_the_payload(
    data: dict[str, Any], sequence: int | None
) -> None:
    text = payload_text("message.created", 42, json.dumps(data), AT, sequence)
    assert text == json.dumps(payload_of("message.created", 42, data, AT, sequence))
    assert json.loads(text)["timestamp"] == "2026-12-07T10:10:11.123456+00:00"
