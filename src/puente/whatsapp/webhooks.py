"""Typed models of Meta's webhook POST bodies (whatsapp-protocol.md §1–4).

Unknown fields are kept (extra="allow") so nothing Meta adds is lost.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Change(WireModel):
    field: str
    value: dict[str, Any]


class Entry(WireModel):
    id: str
    time: int | None = None
    changes: list[Change] = []


class Envelope(WireModel):
    object: str
    entry: list[Entry] = []
