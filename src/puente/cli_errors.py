"""The `puente` command's one error handler: Puente's errors, a database that is not
migrated and files that cannot be read become one line on stderr and an exit status,
never a traceback (PUENTE_DEBUG=1 shows it)."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.exc import DBAPIError

from puente.db.schema import NOT_CURRENT, is_missing_schema
from puente.errors import PuenteError
from puente.startup import NotReady

# What the person typed or gave is wrong (a name that does not exist, a file that is
# not CSV); click uses 2 for a mistyped command line too.
USER_ERROR = 2
# Puente cannot run as set up (the database is not migrated or not reachable), or it
# failed in a way nobody foresaw.
FAILED = 1
DEBUG_HINT = "run again with PUENTE_DEBUG=1 to see the traceback"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit status for an error we know, or None."""
    if isinstance(exc, PuenteError):
        return exc.message, USER_ERROR
    if isinstance(exc, NotReady):
        return exc.message, FAILED
    if is_missing_schema(exc):
        return NOT_CURRENT, FAILED
    if isinstance(exc, DBAPIError):
        return f"the database refused: {_first_line(exc.orig)}", FAILED
    return _describe_file_error(exc)


def _describe_file_error(exc: BaseException) -> tuple[str, int] | None:
    if isinstance(exc, UnicodeDecodeError):
        return f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", USER_ERROR
    if isinstance(exc, csv.Error):
        return f"the file cannot be read as CSV (save it as CSV text): {exc}", USER_ERROR
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", USER_ERROR
    return None


def _first_line(value: object) -> str:
    return (str(value).strip().splitlines() or [type(value).__name__])[0]


def _debug() -> bool:
    return os.environ.get("PUENTE_DEBUG", "").strip().lower() in ("1", "true", "yes")


@contextmanager
def handled_errors() -> Iterator[None]:
    """Around the whole command: SystemExit (click's usage errors, typer.Exit) passes."""
    try:
        yield
    except Exception as exc:
        if _debug():
            raise
        known = describe(exc)
        if known is None:
            typer.echo(
                f"puente: error: unexpected {type(exc).__name__}: {_first_line(exc)}", err=True
            )
            typer.echo(f"puente: hint: {DEBUG_HINT}", err=True)
            sys.exit(FAILED)
        message, status = known
        typer.echo(f"puente: error: {message}", err=True)
        sys.exit(status)
