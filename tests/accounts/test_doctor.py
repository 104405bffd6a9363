"""`puente doctor` names each setting production needs, ok or warn on one line each,
and exits 1 while any of them is unsafe."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from puente.cli import app as cli
from puente.config import get_settings

SETTINGS = (
    "PUENTE_SMTP_URL",
    "PUENTE_SECRET_KEY",
    "PUENTE_SESSION_SECRET",
    "PUENTE_SECURE_COOKIES",
    "PUENTE_BASE_URL",
    "PUENTE_DEV_MAIL",
)
LIVE = {
    "PUENTE_SMTP_URL": "smtps://puente:s3cret-pass@mail.example.com:465",
    "PUENTE_SECRET_KEY": "4bB2iKyeQh4Wq3bVZ0cS7o6Yd6sRk2m1N6nHcO5pL0A=",
    "PUENTE_SESSION_SECRET": "a-long-random-session-secret",
    "PUENTE_SECURE_COOKIES": "1",
    "PUENTE_BASE_URL": "https://inbox.example.com",
}


def doctor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[int, list[str]]:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["doctor"])
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output.splitlines()


def test_a_configured_installation_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    status, lines = doctor(monkeypatch, LIVE)
    assert status == 0, lines
    checks = lines[:-1]
    assert [line.split(":")[0] for line in checks] == [
        "ok    mail",
        "ok    secret key",
        "ok    session secret",
        "ok    https",
        "ok    dev mail",
    ]
    assert lines[-1] == "ready for production"
    assert "s3cret-pass" not in "\n".join(lines)  # secrets are never printed


def test_the_defaults_are_not_ready_for_production(monkeypatch: pytest.MonkeyPatch) -> None:
    status, lines = doctor(monkeypatch, {})
    assert status == 1
    assert [line.split()[0] for line in lines[:5]] == ["warn"] * 4 + ["ok"]  # dev mail off
    assert "PUENTE_SMTP_URL is not set" in lines[0]


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"PUENTE_DEV_MAIL": "1"}, "warn  dev mail: PUENTE_DEV_MAIL is on"),
        ({"PUENTE_SECURE_COOKIES": "0"}, "warn  https: PUENTE_SECURE_COOKIES is off"),
        ({"PUENTE_BASE_URL": "http://inbox.example.com"}, "warn  https: PUENTE_BASE_URL is"),
        ({"PUENTE_SMTP_URL": ""}, "warn  mail: PUENTE_SMTP_URL is not set"),
    ],
)
def test_one_unsafe_setting_fails_the_check(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, str], warning: str
) -> None:
    status, lines = doctor(monkeypatch, {**LIVE, **change})
    assert status == 1
    warned = [line for line in lines if line.startswith("warn")]
    assert len(warned) == 1 and warned[0].startswith(warning), lines
