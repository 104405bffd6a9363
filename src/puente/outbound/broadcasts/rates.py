"""Broadcast cost estimates: a rate table per country calling code and template category
(data/rates.json, overridable per workspace with the setting `rates`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

CATEGORIES = ("marketing", "utility", "authentication")


@dataclass(frozen=True)
class RateTable:
    currency: str
    default: dict[str, Any]
    prefixes: dict[str, dict[str, Any]]

    def entry_for(self, wa_id: str) -> dict[str, Any]:
        digits = wa_id.lstrip("+")
        for length in (3, 2, 1):  # calling codes are 1 to 3 digits; the longest wins
            entry = self.prefixes.get(digits[:length])
            if entry is not None:
                return entry
        return self.default


@functools.cache
def _default_table() -> dict[str, Any]:
    text = (
        resources.files("puente.outbound.broadcasts").joinpath("data/rates.json").read_text("utf-8")
    )
    data: dict[str, Any] = json.loads(text)
    return data


def rate_table(overrides: Mapping[str, Any] | None = None) -> RateTable:
    """The shipped table, with a workspace's `rates` setting laid over it."""
    base = _default_table()
    prefixes = {k: dict(v) for k, v in base["prefixes"].items()}
    default = dict(base["default"])
    currency = str(base.get("currency", "USD"))
    if overrides:
        currency = str(overrides.get("currency", currency))
        default.update(overrides.get("default") or {})
        for prefix, entry in (overrides.get("prefixes") or {}).items():
            prefixes.setdefault(str(prefix), {}).update(entry)
    return RateTable(currency=currency, default=default, prefixes=prefixes)


def estimate(table: RateTable, category: str, wa_ids: Iterable[str]) -> dict[str, Any]:
    """Messages and cost per country for sending one `category` template to each number."""
    category = category.lower()
    if category not in CATEGORIES:
        category = "marketing"  # the dearest: never under-estimate an unknown category
    by_country: dict[str, dict[str, Any]] = {}
    total = 0.0
    count = 0
    for wa_id in wa_ids:
        entry = table.entry_for(wa_id)
        country = str(entry.get("country", "other"))
        price = float(entry.get(category, table.default.get(category, 0.0)))
        row = by_country.setdefault(country, {"country": country, "messages": 0, "cost": 0.0})
        row["messages"] += 1
        row["cost"] += price
        total += price
        count += 1
    countries = sorted(by_country.values(), key=lambda r: (-r["cost"], r["country"]))
    for row in countries:
        row["cost"] = round(row["cost"], 4)
    return {
        "currency": table.currency,
        "category": category,
        "messages": count,
        "total": round(total, 2),
        "countries": countries,
    }
