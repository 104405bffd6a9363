"""`puente channels add` and `puente channels list` against the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from puente.channels.models import Channel
from puente.cli import app
from puente.config import Settings, get_settings
from puente.db.session import Database
from puente.secrets import secret_box
from tests.factories import make_workspace


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUENTE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("PUENTE_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("PUENTE_DATABASE_URL", raising=False)
    assert settings.secret_key is not None
    monkeypatch.setenv("PUENTE_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_channels_add_then_list(cli_env: None, db: Database, settings: Settings) -> None:
    with db.unit_of_work(unscoped="test") as session:
        make_workspace(session, "Tienda")
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "channels", "add", "--workspace", "tienda",
            "--phone-number-id", "106540352242922", "--waba-id", "102290129340398",
            "--display-phone", "+1 555 078 3881", "--mode", "coexistence",
        ],
        env={"PUENTE_CHANNEL_TOKEN": "EAAG-cli-token"},
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "+15550783881 (coexistence, 20 msg/s)" in added.output
    assert "EAAG-cli-token" not in added.output

    with db.read(unscoped="test") as session:
        channel = session.scalar(select(Channel))
        assert channel is not None and channel.access_token_encrypted
        assert secret_box(settings).decrypt(channel.access_token_encrypted) == "EAAG-cli-token"

    listed = runner.invoke(app, ["channels", "list"])
    assert listed.exit_code == 0, listed.output
    assert "tienda\t+15550783881\t106540352242922\tcoexistence\tconnected" in listed.output

    again = runner.invoke(
        app,
        [
            "channels", "add", "--workspace", "tienda", "--phone-number-id", "106540352242922",
            "--waba-id", "1", "--display-phone", "15550783881", "--token", "EAAG-another-token",
        ],
    )  # fmt: skip
    assert again.exit_code != 0
    assert "already connected" in str(again.exception)
