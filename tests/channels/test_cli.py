"""`puente channels onboard` against the sandbox (the owner confirms on the simulated phone
while the command waits) and `puente channels status [--watch]`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from puente.accounts.models import Workspace
from puente.channels.models import Onboarding
from puente.cli import app
from puente.config import Settings, get_settings
from tests.channels.conftest import PHONE, Coex
from tests.conftest import APP_SECRET
from tests.waiting import wait_until


@pytest.fixture
def cli_env(coex: Coex, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PUENTE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("PUENTE_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("PUENTE_DATABASE_URL", raising=False)
    assert settings.secret_key is not None
    monkeypatch.setenv("PUENTE_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("PUENTE_GRAPH_BASE_URL", coex.sandbox_server.url)
    monkeypatch.setenv("PUENTE_META_APP_ID", coex.runtime.settings.meta_app_id)
    monkeypatch.setenv("PUENTE_META_APP_SECRET", APP_SECRET)
    get_settings.cache_clear()
    with coex.db.read(unscoped="test") as session:
        slug = session.scalar(select(Workspace.slug).where(Workspace.id == coex.workspace_id))
    assert slug
    yield slug
    get_settings.cache_clear()


def _confirm_when_started(coex: Coex) -> threading.Thread:
    def owner() -> None:
        def started() -> tuple[int, str] | None:
            with coex.db.read(unscoped="test") as session:
                row = session.scalar(select(Onboarding))
                return (row.id, row.confirm_code or "") if row else None

        onboarding_id, code = wait_until(started, what="the CLI's signup")
        coex.confirm({"id": onboarding_id, "confirm_code": code})

    thread = threading.Thread(target=owner, daemon=True)
    thread.start()
    return thread


def test_onboard_waits_for_the_phone_then_status_watch_follows_the_import(
    coex: Coex, cli_env: str
) -> None:
    coex.control.post("/numbers/106540352242922/history", json={"chats": 4, "messages": 5})
    runner = CliRunner()
    owner = _confirm_when_started(coex)
    result = runner.invoke(
        app, ["channels", "onboard", "--workspace", cli_env, "--phone", "+" + PHONE]
    )
    owner.join(5)
    assert result.exit_code == 0, result.output
    assert "enter the code" in result.output and "connected: channel" in result.output

    watched = runner.invoke(app, ["channels", "status", "--watch", "--interval", "0.2"])
    assert watched.exit_code == 0, watched.output
    assert "+15550783881 history" in watched.output and "100 %" in watched.output

    table = runner.invoke(app, ["channels", "status", "--workspace", cli_env])
    assert table.exit_code == 0, table.output
    assert "Connected" in table.output and "Complete 100 %" in table.output


def test_onboard_reports_a_late_code_and_what_to_do(coex: Coex, cli_env: str) -> None:
    # Every code the sandbox hands out is already past its 30 seconds.
    coex.sandbox.config.signup_code_ttl = -1
    owner = _confirm_when_started(coex)
    result = CliRunner().invoke(
        app, ["channels", "onboard", "--workspace", cli_env, "--phone", PHONE, "--timeout", "20"]
    )
    owner.join(5)
    assert result.exit_code == 1
    assert "30 seconds" in result.output and "Start the signup again" in result.output


def test_status_without_channels(cli_env: str) -> None:
    result = CliRunner().invoke(app, ["channels", "status"])
    assert result.exit_code == 0 and "no channels" in result.output
