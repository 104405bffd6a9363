"""A workspace exported and imported into another installation (a new SQLite database,
and PostgreSQL) comes back whole: every carried kind with the same rows, every id
replaced by the target's and every reference following it; the media files too."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from puente.accounts.models import Membership, User, Workspace
from puente.channels.models import Channel
from puente.conversations.media_worker import media_path
from puente.conversations.models import Media
from puente.db.session import Database
from puente.portability.archive import MANIFEST, Refused
from puente.portability.export import do_export_workspace
from puente.portability.importer import do_import_workspace
from puente.portability.json_ids import JSON_IDS
from puente.portability.kinds import USERS, present, references, table
from puente.reports.models import ReportFact
from tests.command import environment, run_puente
from tests.conversations.conftest import PNG
from tests.factories import make_user, make_workspace
from tests.portability.conftest import Source, postgres_target, sqlite_target

# Kinds the seeded workspace holds no row of (someone else's feature may fill them later).
MAY_BE_EMPTY = {"chat_links", "chat_link_starts", "team_routing"}


def snapshot(db: Database, workspace_id: int) -> dict[str, list[dict[str, Any]]]:
    """Each carried kind's rows in id order, with every id written as its rank among its
    table's ids in the workspace (people as their e-mail): equal before and after a move."""
    with db.read(unscoped="test: compare a workspace across installations") as s:
        emails = dict(s.execute(select(User.id, User.email)).tuples().all())
        ranks: dict[str, dict[int, int]] = {}
        for kind in present():
            t = table(kind.table)
            if "id" in t.c:
                ids = s.scalars(
                    select(t.c.id).where(t.c.workspace_id == workspace_id).order_by(t.c.id)
                )
                ranks[kind.table] = {i: n for n, i in enumerate(ids)}

        def look(name: str, old: Any) -> Any:
            if name == USERS:
                return emails.get(old)
            return ranks.get(name, {}).get(old)

        out: dict[str, list[dict[str, Any]]] = {}
        for kind in present():
            t = table(kind.table)
            rows = s.execute(
                select(t).where(t.c.workspace_id == workspace_id).order_by(*t.primary_key.columns)
            ).mappings()
            refs = references(kind)
            found = []
            for row in rows:
                d = dict(row)
                del d["workspace_id"]
                for column in (*kind.scrub, *kind.on_import):
                    d.pop(column, None)
                if kind.table in ranks:
                    d["id"] = ranks[kind.table][d["id"]]
                for column, target in refs.items():
                    if d[column] is not None and not (
                        d[column] == 0 and column in kind.zero_is_none
                    ):
                        d[column] = look(target, d[column])
                for column, remap in JSON_IDS.get(kind.table, {}).items():
                    d[column] = remap(d[column], look)
                found.append(d)
            out[kind.table] = found
    return out


def _export(source: Source, tmp_path: Path) -> Path:
    out = tmp_path / "tienda.zip"
    result = do_export_workspace(
        source.world.runtime.db,
        source.workspace_id,
        source.world.runtime.settings.data_dir,
        out,
    )
    assert result.rows["messages"] == 1 and result.media_files == 1
    return out


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_workspace_moves_to_another_installation_whole(
    source: Source, tmp_path: Path, engine: str
) -> None:
    archive = _export(source, tmp_path)
    target = sqlite_target(tmp_path) if engine == "sqlite" else postgres_target()
    target_data = tmp_path / "target-data"
    try:
        result = do_import_workspace(target, archive, "Tienda nueva", target_data)
        before = snapshot(source.world.runtime.db, source.workspace_id)
        after = snapshot(target, result.workspace_id)
        empty = sorted(k for k, rows in before.items() if not rows)
        assert set(empty) <= MAY_BE_EMPTY, f"seed these kinds too: {empty}"
        for kind, rows in before.items():
            assert after[kind] == rows, kind
            assert result.rows[kind] == len(rows), kind
        assert result.dropped == {}

        with target.read(scope=result.workspace_id) as s:
            ws = s.get(Workspace, result.workspace_id)
            assert ws is not None and ws.settings["optout_keywords"] == ["BAJA"]
            # The number came over without its token, disconnected, until connected again.
            channel = s.scalars(select(Channel)).one()
            assert channel.access_token_encrypted is None
            assert channel.connection_state == "disconnected"
            # People came over without a way to sign in; they set a password by a reset.
            owner = s.scalars(select(User).where(User.email == "owner@tienda.example")).one()
            assert owner.password_hash is None
            # The rollup worker sums the facts again in the target.
            assert not s.scalar(select(func.count()).where(ReportFact.rolled_up.is_(True)))
            sha = s.scalars(select(Media.sha256)).one()
        assert sha is not None
        assert media_path(target_data, sha).read_bytes() == PNG
    finally:
        target.dispose()


def _counts(db: Database) -> dict[str, int]:
    with db.read(unscoped="test: what the target holds") as s:
        counts = {"workspaces": int(s.scalar(select(func.count()).select_from(Workspace)) or 0)}
        for kind in present():
            t = table(kind.table)
            counts[kind.table] = int(s.scalar(select(func.count()).select_from(t)) or 0)
    return counts


def _rewritten(archive: Path, out: Path, manifest: dict[str, Any]) -> Path:
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename != MANIFEST:
                dst.writestr(item, src.read(item.filename))
        dst.writestr(MANIFEST, json.dumps(manifest))
    return out


def test_damaged_newer_or_misplaced_archives_are_refused_before_anything_is_written(
    source: Source, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    target = sqlite_target(tmp_path)
    data = tmp_path / "target-data"
    try:
        empty = _counts(target)
        assert set(empty.values()) == {0}

        truncated = tmp_path / "truncated.zip"
        truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        with pytest.raises(Refused, match="not a complete Puente archive"):
            do_import_workspace(target, truncated, "Tienda", data)

        manifest = json.loads(zipfile.ZipFile(archive).read(MANIFEST))
        newer = _rewritten(archive, tmp_path / "newer.zip", {**manifest, "format_version": 99})
        with pytest.raises(Refused, match="newer than this Puente reads"):
            do_import_workspace(target, newer, "Tienda", data)

        files = dict(manifest["files"])
        files["data/messages.jsonl"] = {**files["data/messages.jsonl"], "sha256": "0" * 64}
        tampered = _rewritten(archive, tmp_path / "tampered.zip", {**manifest, "files": files})
        with pytest.raises(Refused, match=r"messages\.jsonl fails its checksum"):
            do_import_workspace(target, tampered, "Tienda", data)
        assert _counts(target) == empty
        assert not data.exists()

        do_import_workspace(target, archive, "Tienda", data)
        filled = _counts(target)
        with pytest.raises(Refused, match="'Tienda' is not empty"):
            do_import_workspace(target, archive, "Tienda", data)
        # Into another workspace of the same installation: the number is taken.
        with pytest.raises(Refused, match="already connected to a workspace"):
            do_import_workspace(target, archive, "Otra tienda", data)
        assert _counts(target) == filled
    finally:
        target.dispose()


def test_the_commands_export_import_and_refuse_in_one_line(source: Source, tmp_path: Path) -> None:
    settings = source.world.runtime.settings
    out = tmp_path / "cli.zip"
    ran = run_puente(
        environment(settings), "export", "--workspace", source.slug, "--output", str(out)
    )
    assert ran.returncode == 0, ran.stderr
    assert "1 messages, 1 media files" in ran.stdout
    assert out.is_file() and not (tmp_path / "cli.zip.part").exists()

    target = sqlite_target(tmp_path)
    target.dispose()
    env = {
        **environment(settings),
        "PUENTE_DATABASE_URL": str(target.engine.url),
        "PUENTE_DATA_DIR": str(tmp_path / "target-data"),
    }
    ran = run_puente(env, "import", str(out), "--workspace", "Tienda")
    assert ran.returncode == 0, ran.stderr
    assert "imported into tienda" in ran.stdout

    again = run_puente(env, "import", str(out), "--workspace", "Tienda")
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0
    assert "'Tienda' is not empty" in again.stderr

    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(out.read_bytes()[:1000])
    cut = run_puente(env, "import", str(truncated), "--workspace", "Otra")
    assert cut.returncode == 2
    assert cut.stderr.strip().count("\n") == 0
    assert "not a complete Puente archive" in cut.stderr

    missing = run_puente(env, "export", "--workspace", "nadie")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0


def test_an_empty_workspace_with_its_owner_is_filled_and_the_owner_keeps_their_account(
    source: Source, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    target = sqlite_target(tmp_path)
    try:
        with target.unit_of_work(unscoped="test: a new installation's first workspace") as s:
            ws = make_workspace(s, "Vacía")
            # The same person as the source's owner, with a password of their own here.
            make_user(s, ws, role="admin", email="owner@tienda.example", password="another-one-9")
        result = do_import_workspace(target, archive, "Vacía", tmp_path / "target-data")
        with target.read(scope=result.workspace_id) as s:
            owner = s.scalars(select(User).where(User.email == "owner@tienda.example")).one()
            assert owner.password_hash is not None  # their account here, untouched
            role = s.scalar(
                select(Membership.role).where(
                    Membership.user_id == owner.id, Membership.workspace_id == result.workspace_id
                )
            )
            assert role == "admin"  # a member already keeps their role
            members = s.scalar(select(func.count()).select_from(Membership))
        before = snapshot(source.world.runtime.db, source.workspace_id)
        assert members == len(before["memberships"])
        assert result.rows["messages"] == 1
    finally:
        target.dispose()
