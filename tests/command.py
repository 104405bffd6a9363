"""`puente ...` run in the test's own process: the real entry point (`puente.cli.main`,
which turns every error into one line and an exit status), its settings read from the
environment it is given, its own database connections, its output and status.

Starting the installed command costs seconds of Python start-up per call, which the
suite cannot afford for every command test; tests/automation/test_kb_manage.py and
tests/test_cli_errors.py still run the installed `puente` itself."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass

from puente.cli import main
from puente.config import Settings, get_settings
from tests.conftest import SECRET_KEY


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """What a terminal on this test's Puente has set: its data, its key, its database."""
    return {
        "PUENTE_DATA_DIR": str(settings.data_dir),
        "PUENTE_SECRET_KEY": SECRET_KEY,
        "PUENTE_DATABASE_URL": settings.database_url or "",
        **extra,
    }


def run_puente(env: dict[str, str], *args: str) -> Ran:
    saved = {key: os.environ.get(key) for key in env}
    out, err = io.StringIO(), io.StringIO()
    code = 0
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
    return Ran(code, out.getvalue(), err.getvalue())
