"""Data the coexistence pages show, kept as JSON so it can change without a release: the
"what works where" feature table (Spanish and English) and the countries list.

PUENTE_COEX_DATA_DIR points at a folder with replacement `features.json` / `countries.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
MIN_APP_VERSION = "2.24.17"


def _load(name: str) -> dict[str, Any]:
    override = os.environ.get("PUENTE_COEX_DATA_DIR")
    path = Path(override) / name if override else DATA_DIR / name
    if not path.exists():
        path = DATA_DIR / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class FeatureGroup:
    key: str
    title: str
    items: list[str]


def feature_table(lang: str) -> tuple[list[FeatureGroup], list[str]]:
    """The feature groups and the notes, in `lang` (English when a text lacks it)."""
    data = _load("features.json")

    def pick(text: dict[str, str]) -> str:
        return text.get(lang) or text["en"]

    groups = [
        FeatureGroup(g["key"], pick(g["title"]), [pick(i) for i in g["items"]])
        for g in data["groups"]
    ]
    return groups, [pick(n) for n in data.get("notes", [])]


def countries() -> dict[str, str]:
    """ISO code -> name of the countries offered in the eligibility checklist: those where
    Meta offers coexistence (countries.json's `excluded` names the others)."""
    data = _load("countries.json")
    excluded = set(data.get("excluded", []))
    offered = {code: name for code, name in data["countries"].items() if code not in excluded}
    return dict(sorted(offered.items(), key=lambda kv: kv[1]))
