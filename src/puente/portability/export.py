"""`do_export_workspace`: a workspace written to a portable archive, streamed table by
table (server-side cursors on PostgreSQL), so memory stays flat whatever its size."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import queue
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import JSON, Date, DateTime, LargeBinary, Table, Text, cast, func, select
from sqlalchemy.orm import Session

import puente
from puente.accounts import audit
from puente.accounts.models import Membership, User, Workspace
from puente.conversations.media_worker import media_path
from puente.conversations.models import Media
from puente.db.session import Database
from puente.portability import archive
from puente.portability.kinds import USERS, Kind, present, table

WORKSPACE_EXPORTED = "workspace.exported"
BATCH = 2000
# What of a person travels: who they are, never how they sign in (no password hash, no
# two-factor secret). The target finds them by e-mail or creates them without a password.
USER_COLUMNS = ("id", "email", "name", "locale", "timezone", "notification_prefs", "is_active")
WORKSPACE_KIND = "workspace"

# (what, rows done, rows in all); "what" is a table name, "workspace", "users" or "media".
Progress = Callable[[str, int, int], None]


@dataclass
class ExportResult:
    path: Path
    rows: dict[str, int]
    media_files: int


def is_type(column: Any, kind: type) -> bool:
    """Whether the column is of `kind`, directly or under a TypeDecorator (UTCDateTime)."""
    found = column.type
    return isinstance(found, kind) or isinstance(getattr(found, "impl", None), kind)


def _encoder(column: Any) -> Callable[[Any], Any] | None:
    if is_type(column, DateTime):
        return lambda v: v.astimezone(dt.UTC).isoformat() if v is not None else None
    if is_type(column, Date):
        return lambda v: v.isoformat() if v is not None else None
    if is_type(column, LargeBinary):
        return lambda v: base64.b64encode(v).decode() if v is not None else None
    return None


def _row_encoder(t: Table, scrub: dict[str, Any]) -> Callable[[Any], str]:
    """A row (as `_stream` selects it) to one JSON line. JSON columns arrive as their
    stored text and are spliced in as they are: parsing them only to write them again
    was the largest cost of the export on PostgreSQL."""
    raw = [c.name for c in t.c if is_type(c, JSON) and c.name not in scrub]
    plain = [c.name for c in t.c if c.name not in raw]
    encoders = [(i, _encoder(t.c[name])) for i, name in enumerate(plain)]
    converting = [(i, enc) for i, enc in encoders if enc is not None]
    scrubbed = [(plain.index(c), v) for c, v in scrub.items() if c in plain]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    keys = [dumps(name) for name in raw]
    cut = len(plain)

    def encode(row: Any) -> str:
        values = list(row[:cut])
        for i, enc in converting:
            values[i] = enc(values[i])
        for i, v in scrubbed:
            values[i] = v
        line = dumps(dict(zip(plain, values, strict=True)))
        if not keys:
            return line
        tail = "".join(
            f",{key}:{text if text is not None else 'null'}"
            for key, text in zip(keys, row[cut:], strict=True)
        )
        return line[:-1] + tail + "}"

    return encode


def _stream(session: Session, t: Table, workspace_id: int, scrub: dict[str, Any]) -> Iterator[Any]:
    """The workspace's rows of `t`, plain columns first, then the JSON ones as text."""
    json_columns = [c for c in t.c if is_type(c, JSON) and c.name not in scrub]
    plain = [c for c in t.c if c not in json_columns]
    stmt = (
        select(*plain, *(cast(c, Text) for c in json_columns))
        .where(t.c.workspace_id == workspace_id)
        .order_by(*t.primary_key.columns)
        .execution_options(yield_per=BATCH)
    )
    yield from session.execute(stmt)


def _count(session: Session, t: Table, workspace_id: int) -> int:
    stmt = select(func.count()).select_from(t).where(t.c.workspace_id == workspace_id)
    return int(session.execute(stmt).scalar_one())


def _write_kind(
    zf: zipfile.ZipFile,
    session: Session,
    kind: Kind,
    workspace_id: int,
    progress: Progress,
) -> archive.FileEntry:
    t = table(kind.table)
    total = _count(session, t, workspace_id)
    encode = _row_encoder(t, kind.scrub)
    progress(kind.table, 0, total)
    with zf.open(archive.data_name(kind.table), "w", force_zip64=True) as member:
        lines = archive.LinesWriter(member)
        for n, row in enumerate(_stream(session, t, workspace_id, kind.scrub), 1):
            lines.write(encode(row))
            if n % BATCH == 0:
                progress(kind.table, n, total)
        entry = lines.close()
    progress(kind.table, entry.rows, total)
    return entry


def _write_rows(zf: zipfile.ZipFile, name: str, rows: list[dict[str, Any]]) -> archive.FileEntry:
    with zf.open(name, "w") as member:
        lines = archive.LinesWriter(member)
        for row in rows:
            lines.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        return lines.close()


def _workspace_row(ws: Workspace) -> dict[str, Any]:
    return {"name": ws.name, "slug": ws.slug, "timezone": ws.timezone, "settings": ws.settings}


def _member_users(session: Session, workspace_id: int) -> list[dict[str, Any]]:
    columns = [getattr(User, c) for c in USER_COLUMNS]
    rows = session.execute(
        select(*columns)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(User.id)
    )
    return [dict(zip(USER_COLUMNS, row, strict=True)) for row in rows]


def _write_media(
    zf: zipfile.ZipFile, session: Session, workspace_id: int, data_dir: Path, progress: Progress
) -> dict[str, archive.FileEntry]:
    """The stored files of the workspace's media, once per content (they are addressed by
    their SHA-256, which is also their checksum)."""
    checksum = func.coalesce(Media.sha256, "")
    hashes = list(
        session.scalars(
            select(checksum)
            .where(Media.workspace_id == workspace_id, Media.state == "stored")
            .where(Media.sha256.is_not(None))
            .distinct()
            .order_by(checksum)
        )
    )
    written: dict[str, archive.FileEntry] = {}
    for n, sha in enumerate(hashes, 1):
        path = media_path(data_dir, sha)
        if path.is_file():
            zf.write(path, archive.media_name(sha), compress_type=zipfile.ZIP_STORED)
            written[archive.media_name(sha)] = archive.FileEntry(
                rows=0, sha256=sha, bytes=path.stat().st_size
            )
        progress("media", n, len(hashes))
    return written


def _snapshot(session: Session) -> None:
    # One consistent picture of the workspace while the export reads table after table.
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def do_export_workspace(
    db: Database,
    workspace_id: int,
    data_dir: Path,
    out: Path,
    *,
    actor: str = "puente export",
    progress: Progress | None = None,
) -> ExportResult:
    """Write the workspace to `out` (a zip; written beside it and renamed when whole, so a
    failed export never leaves a file that looks complete). Audited in the workspace."""
    report = progress or (lambda what, done, total: None)
    partial = out.with_name(out.name + ".part")
    rows: dict[str, int] = {}
    try:
        media = _write_archive(db, workspace_id, data_dir, partial, rows, report)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    _audit(db, workspace_id, actor, rows, media)
    return ExportResult(out, rows, media)


def _audit(db: Database, workspace_id: int, actor: Any, rows: dict[str, int], media: int) -> None:
    with db.unit_of_work(scope=workspace_id) as session:
        audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=WORKSPACE_EXPORTED,
            target=f"workspace {workspace_id}",
            details={"messages": rows.get("messages", 0), "media_files": media},
        )


class _Pipe:
    """A write-only stream whose bytes a reader takes from a bounded queue: the zip is
    sent while it is written, with at most QUEUED chunks in memory."""

    QUEUED = 16

    def __init__(self) -> None:
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(self.QUEUED)
        self.closed_by_reader = threading.Event()

    def write(self, data: bytes) -> int:
        if self.closed_by_reader.is_set():
            raise BrokenPipeError("the download was abandoned")
        if data:
            self.chunks.put(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def stream_workspace_export(
    db: Database, workspace_id: int, data_dir: Path, *, actor: Any
) -> Iterator[bytes]:
    """The archive as it is written, for an HTTP download. A download cut short (or an
    export that fails half-way) ends without the manifest, which the importer refuses."""
    pipe = _Pipe()

    def produce() -> None:
        rows: dict[str, int] = {}
        try:
            media = _write_archive(db, workspace_id, data_dir, pipe, rows, lambda *_: None)  # type: ignore[arg-type]
            _audit(db, workspace_id, actor, rows, media)
            pipe.chunks.put(None)
        except BaseException as exc:  # handed to the reader, which raises it
            if not pipe.closed_by_reader.is_set():
                pipe.chunks.put(exc)

    worker = threading.Thread(target=produce, name="workspace-export", daemon=True)
    worker.start()
    try:
        while (chunk := pipe.chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk
    finally:
        pipe.closed_by_reader.set()
        # Unblock a writer waiting on a full queue so the thread can end.
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                pipe.chunks.get(timeout=0.1)


def _write_archive(
    db: Database,
    workspace_id: int,
    data_dir: Path,
    partial: Path | IO[bytes],
    rows: dict[str, int],
    report: Progress,
) -> int:
    with db.read(scope=workspace_id) as session:
        _snapshot(session)
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        manifest = archive.Manifest(
            puente_version=puente.__version__,
            source_engine=session.get_bind().dialect.name,
            exported_at=dt.datetime.now(dt.UTC).isoformat(),
            workspace={"name": ws.name, "slug": ws.slug},
        )
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            files = manifest.files
            files[archive.data_name(WORKSPACE_KIND)] = _write_rows(
                zf, archive.data_name(WORKSPACE_KIND), [_workspace_row(ws)]
            )
            users = _member_users(session, workspace_id)
            files[archive.data_name(USERS)] = _write_rows(zf, archive.data_name(USERS), users)
            for kind in present():
                entry = _write_kind(zf, session, kind, workspace_id, report)
                files[archive.data_name(kind.table)] = entry
                rows[kind.table] = entry.rows
            media = _write_media(zf, session, workspace_id, data_dir, report)
            files.update(media)
            zf.writestr(archive.MANIFEST, json.dumps(manifest.as_json(), indent=1))
    return len(media)
