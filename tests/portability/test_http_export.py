"""The archive downloaded over HTTP: by a token that may read everything (the REST API)
and by the workspace's owner (the "Export workspace" button); both import whole."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.portability.importer import do_import_workspace
from tests.factories import PASSWORD, make_token, make_user
from tests.portability.conftest import Source, sqlite_target
from tests.webclient import WebClient


def _imports_whole(archive: bytes, tmp_path: Path) -> None:
    path = tmp_path / "download.zip"
    path.write_bytes(archive)
    target = sqlite_target(tmp_path)
    try:
        result = do_import_workspace(target, path, "Tienda", tmp_path / "target-data")
        assert result.rows["messages"] == 1 and result.media_files == 1
    finally:
        target.dispose()


def test_a_token_that_reads_everything_downloads_the_workspace(
    source: Source, tmp_path: Path
) -> None:
    res = source.world.api.get("/workspace/export")
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "application/zip"
    assert res.headers["content-disposition"] == f'attachment; filename="{source.slug}.zip"'
    _imports_whole(res.content, tmp_path)

    with source.world.runtime.db.unit_of_work(unscoped="test: a narrower token") as s:
        ws = s.get(Workspace, source.workspace_id)
        assert ws is not None
        narrow = make_token(s, ws, scopes=["contacts:read", "messages:read"])
    refused = source.world.api.get(
        "/workspace/export", headers={"Authorization": f"Bearer {narrow}"}
    )
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "missing_scope" and "settings:read" in error["message"]


def test_only_the_owner_exports_the_workspace_from_the_privacy_page(
    source: Source, tmp_path: Path
) -> None:
    base = str(source.world.api.base_url).rstrip("/").removesuffix("/api/v1")
    with source.world.runtime.db.unit_of_work(unscoped="test: an admin") as s:
        ws = s.scalars(select(Workspace)).one()
        make_user(s, ws, role="admin", email="admin@tienda.example")

    with httpx.Client(base_url=base, timeout=30) as http:
        owner = WebClient(http)
        assert owner.login("owner@tienda.example", PASSWORD).status_code in (200, 303)
        page = owner.get("/settings/privacy")
        assert 'data-testid="workspace-export"' in page.text
        download = owner.post("/settings/workspace/export")
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/zip"
        _imports_whole(download.content, tmp_path)

    with httpx.Client(base_url=base, timeout=30) as http:
        admin = WebClient(http)
        admin.login("admin@tienda.example", PASSWORD)
        assert 'data-testid="workspace-export"' not in admin.get("/settings/privacy").text
        assert admin.post("/settings/workspace/export").status_code == 403
