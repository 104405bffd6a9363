"""The `puente` command ends every ordinary mistake in one line and a non-zero exit,
never a Python traceback. Commands run in this process through `puente.cli.main` (the
handler around the typer app), on a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer.main
from typer.core import TyperArgument
from typer.testing import CliRunner

from puente.cli import app, main
from puente.cli_errors import handled_errors
from puente.config import Settings, get_settings
from puente.db.session import Database
from tests.conftest import PG_URL, TEST_DB
from tests.factories import make_workspace

PUENTE = str(Path(sys.executable).with_name("puente"))
MIGRATE_HINT = "the database schema is not current: run `puente migrate`"


@dataclass
class Outcome:
    status: int
    output: str


def run_puente(args: list[str], env: dict[str, str]) -> Outcome:
    """`puente ARGS` in this process, with its stdout and stderr captured together."""
    get_settings.cache_clear()  # the settings are read once per process
    status = 0
    with CliRunner().isolation(env=env) as (_out, _err, both):
        try:
            main(args)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            output = both.getvalue().decode("utf-8", "replace")
    get_settings.cache_clear()
    return Outcome(status, output)


def puente_env(settings: Settings) -> dict[str, str]:
    env = {
        "PUENTE_DATA_DIR": str(settings.data_dir),
        "PUENTE_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "PUENTE_LOG_LEVEL": "WARNING",
        "PUENTE_DEBUG": "",
    }
    env["PUENTE_DATABASE_URL"] = settings.database_url or ""
    return env


def _leaf_commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path
        return
    for name, sub in subcommands.items():
        yield from _leaf_commands(sub, (*path, name))


def _command(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


# Every command the typer app registers: one added later is covered without listing it.
COMMANDS = sorted(_leaf_commands(typer.main.get_command(app)))


def wrong_arguments(path: tuple[str, ...], missing_file: Path) -> list[str]:
    """A wrong command line for any command: a workspace that does not exist and empty or
    unknown values for what it requires; else a number option given a word; else an
    argument the command does not take."""
    params = [p for p in _command(path).params if p.expose_value]
    names = {p.name for p in params}
    if "workspace" in names or any(p.required for p in params):
        args: list[str] = []
        for param in params:
            if param.name == "workspace":
                value = "nosuch"
            elif param.required:
                value = _unknown_value(param.type_descriptor.annotation, missing_file)
            else:
                continue
            args += [value] if isinstance(param, TyperArgument) else [param.opts[0], value]
        return [*path, *args]
    for param in params:
        if param.type_descriptor.annotation in (int, float):
            return [*path, param.opts[0], "not-a-number"]
    return [*path, "unexpected-extra-argument"]


def _unknown_value(annotation: object, missing_file: Path) -> str:
    if annotation in (int, float):
        return "999999"
    if annotation is Path:
        return str(missing_file)
    return ""


def test_the_walk_covers_every_command() -> None:
    assert ("tokens", "create") in COMMANDS
    assert ("contacts", "import") in COMMANDS
    assert ("migrate",) in COMMANDS
    assert len(COMMANDS) > 30


# A wrong argument reads the same on either database: one leg.
@pytest.mark.one_leg("sqlite")
@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_given_a_wrong_argument_fails_without_a_traceback(
    path: tuple[str, ...], settings: Settings, db: Database, tmp_path: Path
) -> None:
    args = wrong_arguments(path, tmp_path / "missing.csv")
    outcome = run_puente(args, puente_env(settings))
    assert outcome.status != 0, f"puente {' '.join(args)} succeeded:\n{outcome.output}"
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.output.strip(), "it failed without a word"


def test_tokens_create_for_an_unknown_workspace_is_one_line(
    settings: Settings, db: Database
) -> None:
    outcome = run_puente(["tokens", "create", "--workspace", "nosuch"], puente_env(settings))
    assert outcome.status == 2
    assert outcome.output == "puente: error: no workspace called 'nosuch'\n"


@pytest.fixture
def workspace(db: Database) -> str:
    with db.unit_of_work(unscoped="test") as session:
        return make_workspace(session, "Tienda").slug


def test_contacts_import_of_a_binary_file_is_one_line(
    settings: Settings, workspace: str, tmp_path: Path
) -> None:
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\r\x00\n\x00\x80\x00\x81" * 40)
    outcome = run_puente(
        ["contacts", "import", str(binary), "--workspace", workspace], puente_env(settings)
    )
    assert outcome.status == 2
    assert outcome.output.startswith("puente: error: the file cannot be read as CSV")
    assert outcome.output.count("\n") == 1


def test_a_csv_that_is_not_utf8_where_utf8_is_required_is_one_line(
    settings: Settings, workspace: str, tmp_path: Path
) -> None:
    latin1 = tmp_path / "recipients.csv"
    latin1.write_bytes("phone,nombre\n+573001234567,José\n".encode("latin-1"))
    args = ["broadcasts", "create", "--workspace", workspace, "--template", "hola"]
    outcome = run_puente([*args, "--csv", str(latin1)], puente_env(settings))
    assert outcome.status != 0
    assert "Traceback" not in outcome.output
    assert outcome.output.startswith("puente: error: "), outcome.output
    assert outcome.output.count("\n") == 1


def _empty_database_url(tmp_path: Path) -> str:
    if TEST_DB != "postgres":
        return ""  # SQLite in the (empty) data directory
    url = sa.engine.make_url(PG_URL)
    url = url.set(database=f"{url.database}_unmigrated")
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    admin.dispose()
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "args",
    [
        ["tokens", "create", "--workspace", "tienda"],
        ["templates", "list", "--workspace", "tienda"],
        ["events", "failed"],
    ],
    ids=" ".join,
)
def test_a_command_on_a_database_never_migrated_says_to_run_migrate(
    args: list[str], tmp_path: Path, pg_schema: str | None
) -> None:
    env = {
        "PUENTE_DATA_DIR": str(tmp_path / "new"),
        "PUENTE_DATABASE_URL": _empty_database_url(tmp_path),
        "PUENTE_DEBUG": "",
    }
    outcome = run_puente(args, env)
    assert outcome.status == 1
    assert outcome.output == f"puente: error: {MIGRATE_HINT}\n"


def test_an_unexpected_failure_is_one_line_and_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUENTE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited, handled_errors():
        raise RuntimeError("the disk fell off\nsecond line")
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "puente: error: unexpected RuntimeError: the disk fell off\n"
        "puente: hint: run again with PUENTE_DEBUG=1 to see the traceback\n"
    )


def test_puente_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUENTE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="the disk fell off"), handled_errors():
        raise RuntimeError("the disk fell off")


def test_the_installed_command_answers_in_one_line(settings: Settings, db: Database) -> None:
    """The real `puente` executable goes through the same handler."""
    done = subprocess.run(
        [PUENTE, "tokens", "create", "--workspace", "nosuch"],
        env={**os.environ, **puente_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "puente: error: no workspace called 'nosuch'\n"
    assert done.stdout == ""
