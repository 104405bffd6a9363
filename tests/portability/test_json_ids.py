"""Ids inside workflow definitions get their new values on import: a condition naming a
segment by id must point at the imported segment, not at whatever has that id on the
target installation (a name stays a name)."""

from __future__ import annotations

from typing import Any

from puente.portability.json_ids import workflow_definition

NEW_IDS = {("segments", 7): 101, ("segments", 8): 102, ("channels", 3): 55}


def lookup(table: str, old: Any) -> int | None:
    return NEW_IDS.get((table, int(old)))


def test_segment_conditions_follow_their_segments_and_names_stay() -> None:
    definition = {
        "trigger": {
            "type": "message",
            "channel_ids": [3],
            "conditions": {
                "match": "all",
                "rules": [{"field": "contact.segment", "op": "eq", "value": 7}],
            },
        },
        "steps": [
            {
                "id": "check",
                "type": "branch",
                "conditions": {
                    "match": "any",
                    "rules": [
                        {"field": "contact.segment", "op": "in", "value": ["8", "VIP", 9]},
                        {"field": "contact.tags", "op": "in", "value": ["12"]},
                    ],
                },
            }
        ],
    }

    moved = workflow_definition(definition, lookup)

    assert moved["trigger"]["channel_ids"] == [55]
    assert moved["trigger"]["conditions"]["rules"][0]["value"] == 101
    rules = moved["steps"][0]["conditions"]["rules"]
    # 8 is the imported segment 102, "VIP" a name, 9 a segment the archive did not hold.
    assert rules[0]["value"] == [102, "VIP"]
    assert rules[1]["value"] == ["12"]  # tags are names, never ids
