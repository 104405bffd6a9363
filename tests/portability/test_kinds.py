"""Every workspace-owned table is either carried by a workspace archive or left out with a
reason, and every id-like column of a carried table says where its ids point."""

from __future__ import annotations

from puente.portability.kinds import (
    EXPORTED,
    NOT_EXPORTED,
    NOT_ROW_IDS,
    USERS,
    owned_tables,
    present,
    references,
    table,
)


def test_every_workspace_owned_table_is_exported_or_left_out_with_a_reason() -> None:
    exported = {k.table for k in EXPORTED}
    assert not exported & set(NOT_EXPORTED), "a table cannot be both carried and left out"
    undecided = sorted(owned_tables() - exported - set(NOT_EXPORTED))
    assert undecided == [], (
        f"decide for these tables whether a workspace archive carries them: {undecided} "
        "(puente/portability/kinds.py, and docs/export.md)"
    )


def test_every_id_column_of_an_exported_table_says_where_its_ids_point() -> None:
    unexplained = []
    for kind in present():
        refs = references(kind)
        for column in table(kind.table).c:
            name = column.name
            if name in ("id", "workspace_id") or name in refs:
                continue
            if name in NOT_ROW_IDS or f"{kind.table}.{name}" in NOT_ROW_IDS:
                continue
            if name.endswith("_id") or name.endswith("_by"):
                unexplained.append(f"{kind.table}.{name}")
    assert unexplained == [], (
        f"say which table these columns' ids belong to (Kind.refs), or that they are not "
        f"row ids (NOT_ROW_IDS): {unexplained}"
    )


def test_references_point_at_carried_tables_or_people() -> None:
    carried = {k.table for k in EXPORTED} | {USERS}
    for kind in present():
        for column, target in references(kind).items():
            assert target in carried, f"{kind.table}.{column} points at {target}, not carried"


def test_tables_are_loaded_after_the_tables_they_point_at() -> None:
    order = [k.table for k in present()]
    for kind in present():
        for column, target in references(kind).items():
            if target == USERS or column in kind.deferred or target == kind.table:
                continue
            assert order.index(target) < order.index(kind.table), f"{kind.table}.{column}"
