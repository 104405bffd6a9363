"""`do_import_workspace`: an archive loaded into a new or empty workspace, every row with
a new id and every reference to it remapped, in one transaction: it all goes in or
nothing does. Everything that can make the archive unfit is checked before the first
write (see `check_archive`)."""

from __future__ import annotations

import base64
import datetime as dt
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Date, DateTime, LargeBinary, Table, func, select
from sqlalchemy.orm import Session

from puente.accounts import audit
from puente.accounts.models import Membership, User, Workspace
from puente.accounts.service import access_workspace_by_name, do_create_workspace, slugify
from puente.automation.kb_models import KbPhrasing
from puente.automation.kb_search import index_phrasings
from puente.channels.models import Channel
from puente.conversations.media_worker import media_path
from puente.db.base import Base
from puente.db.bulk_rows import allocate_ids, db_time, dumps, insert_rows, update_rows
from puente.db.scope import set_scope
from puente.db.session import Database
from puente.errors import NotFound
from puente.portability import archive
from puente.portability.archive import Manifest, Refused
from puente.portability.export import WORKSPACE_KIND, Progress, is_type
from puente.portability.idmap import IdMap
from puente.portability.json_ids import JSON_IDS
from puente.portability.kinds import USERS, Kind, present, references, table

WORKSPACE_IMPORTED = "workspace.imported"
BATCH = 5000


@dataclass
class ImportResult:
    workspace_id: int
    slug: str
    rows: dict[str, int] = field(default_factory=dict)
    # Rows left out because something they need is not in the archive (a person who is
    # no longer a member, say), per kind.
    dropped: dict[str, int] = field(default_factory=dict)
    users_created: int = 0
    media_files: int = 0


def _model(name: str) -> type[Base]:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table(name):
            return mapper.class_
    raise KeyError(name)


# -- checks before anything is written ----------------------------------------------------


def check_archive(zf: zipfile.ZipFile, progress: Progress | None = None) -> Manifest:
    """The manifest of a whole archive this Puente can read, or Refused."""
    manifest = archive.read_manifest(zf)
    known = {archive.data_name(k.table) for k in present()}
    known |= {archive.data_name(WORKSPACE_KIND), archive.data_name(USERS)}
    unknown = sorted(n for n in manifest.files if n.startswith("data/") and n not in known)
    if unknown:
        raise Refused(
            "the archive carries kinds this Puente does not know "
            f"({', '.join(unknown)}): upgrade Puente on this installation first"
        )
    total = len(manifest.files)
    done = [0]

    def checked(_name: str) -> None:
        done[0] += 1
        if progress is not None:
            progress("checking", done[0], total)

    archive.verify(zf, manifest, checked)
    return manifest


def _existing_rows(session: Session, workspace_id: int) -> dict[str, int]:
    found = {}
    for kind in present():
        if kind.table == "memberships":
            continue  # a new workspace has its owner already
        t = table(kind.table)
        stmt = select(func.count()).select_from(t).where(t.c.workspace_id == workspace_id)
        count = int(session.execute(stmt).scalar_one())
        if count:
            found[kind.table] = count
    return found


def _target(session: Session, name: str, manifest: Manifest) -> Workspace | None:
    """The existing workspace called `name` if it is empty; None when it is to be created."""
    try:
        ws = access_workspace_by_name(session, name)
    except NotFound:
        if session.scalar(select(Workspace.id).where(Workspace.slug == slugify(name))):
            raise Refused(
                f"a workspace with the short name '{slugify(name)}' exists already"
            ) from None
        return None
    found = _existing_rows(session, ws.id)
    if found:
        what = ", ".join(f"{n} {t}" for t, n in sorted(found.items()))
        raise Refused(
            f"the workspace '{ws.name}' is not empty ({what}): import into a new workspace "
            "or an empty one"
        )
    return ws


def _check_numbers(session: Session, zf: zipfile.ZipFile) -> None:
    """A number belongs to one workspace of an installation: one that is here already
    stays where it is."""
    ids = [row["phone_number_id"] for row in archive.read_lines(zf, archive.data_name("channels"))]
    if not ids:
        return
    taken = list(
        session.scalars(select(Channel.phone_number_id).where(Channel.phone_number_id.in_(ids)))
    )
    if taken:
        raise Refused(
            f"the number(s) {', '.join(sorted(taken))} are already connected to a workspace "
            "of this installation"
        )


# -- the load --------------------------------------------------------------------------------


class Loader:
    def __init__(self, session: Session, zf: zipfile.ZipFile, workspace_id: int, data_dir: Path):
        self.session = session
        self.zf = zf
        self.workspace_id = workspace_id
        self.data_dir = data_dir
        self.maps: dict[str, IdMap] = {}
        self.users: dict[int, int] = {}
        self.deferred: list[tuple[str, str, str, list[tuple[int, int]]]] = []
        self.result = ImportResult(workspace_id, "")

    def lookup(self, name: str, old: Any) -> int | None:
        if old is None or isinstance(old, bool) or not isinstance(old, int):
            return None
        if name == USERS:
            return self.users.get(old)
        mapped = self.maps.get(name)
        return mapped.get(old) if mapped is not None else None

    # -- users and the workspace row

    def load_users(self) -> None:
        for row in archive.read_lines(self.zf, archive.data_name(USERS)):
            email = str(row["email"]).strip().lower()
            user = self.session.scalar(select(User).where(User.email == email))
            if user is None:
                # Without a password: they set one with "Forgot password" or a reset
                # link from `puente users reset` (docs/export.md).
                user = User(
                    email=email,
                    name=row.get("name") or email,
                    password_hash=None,
                    locale=row.get("locale"),
                    timezone=row.get("timezone") or "UTC",
                    notification_prefs=row.get("notification_prefs") or {},
                    is_active=bool(row.get("is_active", True)),
                )
                self.session.add(user)
                self.session.flush()
                self.result.users_created += 1
            self.users[int(row["id"])] = user.id

    def load_workspace_settings(self, ws: Workspace) -> None:
        rows = list(archive.read_lines(self.zf, archive.data_name(WORKSPACE_KIND)))
        if rows:
            ws.timezone = rows[0].get("timezone") or ws.timezone
            ws.settings = {**(ws.settings or {}), **(rows[0].get("settings") or {})}
            self.session.flush()

    # -- one kind

    def load(self, kind: Kind, total: int, progress: Progress) -> None:
        t = table(kind.table)
        rows = archive.read_lines(self.zf, archive.data_name(kind.table))
        done = 0
        progress(kind.table, 0, total)
        plan = _Plan(self, kind, t)
        for batch in _batches(rows, BATCH):
            plan.insert(batch)
            done += len(batch)
            progress(kind.table, done, total)
        self.result.rows[kind.table] = plan.inserted
        if plan.dropped:
            self.result.dropped[kind.table] = plan.dropped
        for column, target, pairs in plan.deferred_pairs():
            self.deferred.append((kind.table, column, target, pairs))

    def finish_deferred(self) -> None:
        for name, column, target, pairs in self.deferred:
            rows = [
                (new_ref, row_id)
                for row_id, old in pairs
                if (new_ref := self.lookup(target, old)) is not None
            ]
            update_rows(self.session, _model(name), [column], rows)

    def copy_media(self, manifest: Manifest, progress: Progress) -> None:
        names = [n for n in manifest.files if n.startswith("media/")]
        for n, name in enumerate(names, 1):
            sha = name.removeprefix("media/")
            path = media_path(self.data_dir, sha)
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(path.name + ".importing")
                with self.zf.open(name) as src, partial.open("wb") as dst:
                    for chunk in iter(lambda s=src: s.read(archive.CHUNK), b""):  # type: ignore[misc]
                        dst.write(chunk)
                partial.replace(path)
            self.result.media_files += 1
            progress("media", n, len(names))


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _decoder(session: Session, column: Any) -> Callable[[Any], Any] | None:
    if is_type(column, DateTime):
        return lambda v: db_time(session, dt.datetime.fromisoformat(v)) if v is not None else None
    if is_type(column, Date):
        return lambda v: dt.date.fromisoformat(v) if v is not None else None
    if is_type(column, LargeBinary):
        return lambda v: base64.b64decode(v) if v is not None else None
    if is_type(column, JSON):
        return lambda v: dumps(v) if v is not None else None
    return None


def _default(column: Any) -> Any:
    default = column.default
    if default is not None and getattr(default, "is_scalar", False):
        return default.arg
    return None


class _Plan:
    """How the rows of one kind become rows of the target."""

    def __init__(self, loader: Loader, kind: Kind, t: Table) -> None:
        self.loader = loader
        self.kind = kind
        self.model = _model(kind.table)
        self.columns = [c.name for c in t.c]
        self.nullable = {c.name: c.nullable for c in t.c}
        self.defaults = {c.name: _default(c) for c in t.c}
        self.has_id = "id" in t.c and [c.name for c in t.primary_key.columns] == ["id"]
        refs = references(kind)
        self.refs = {c: target for c, target in refs.items() if c not in kind.deferred}
        self.json = JSON_IDS.get(kind.table, {})
        self.decoders = [(i, d) for i, c in enumerate(t.c) if (d := _decoder(loader.session, c))]
        self.inserted = 0
        self.dropped = 0
        self._deferred: dict[str, list[tuple[int, int]]] = {c: [] for c in kind.deferred}
        if self.has_id:
            loader.maps[kind.table] = IdMap()

    def _remap(self, row: dict[str, Any]) -> dict[str, Any] | None:
        loader = self.loader
        row["workspace_id"] = loader.workspace_id
        for column, target in self.refs.items():
            old = row.get(column)
            if old is None or (old == 0 and column in self.kind.zero_is_none):
                continue
            new = loader.lookup(target, old)
            if new is None and not self.nullable[column]:
                return None
            row[column] = new
        row.update(self.kind.on_import)
        return row

    def insert(self, batch: list[dict[str, Any]]) -> None:
        loader = self.loader
        kept = [r for r in (self._remap(row) for row in batch) if r is not None]
        self.dropped += len(batch) - len(kept)
        if self.has_id and kept:
            ids = allocate_ids(loader.session, self.model, len(kept))
            own = loader.maps[self.kind.table]
            for row, new in zip(kept, ids, strict=True):
                own.add(int(row["id"]), new)
                for column in self._deferred:
                    if row.get(column) is not None:
                        self._deferred[column].append((new, row[column]))
                        row[column] = None
                row["id"] = new
        for row in kept:
            for column, remap in self.json.items():
                row[column] = remap(row.get(column), loader.lookup)
        tuples = [self._values(row) for row in kept]
        insert_rows(loader.session, self.model, self.columns, tuples)
        if self.kind.table == "kb_phrasings":
            index_phrasings(loader.session, [KbPhrasing(**r) for r in kept])
        self.inserted += len(kept)

    def _values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        values = [
            row.get(c, self.defaults[c]) if c in row else self.defaults[c] for c in self.columns
        ]
        for i, decode in self.decoders:
            values[i] = decode(values[i])
        return tuple(values)

    def deferred_pairs(self) -> list[tuple[str, str, list[tuple[int, int]]]]:
        return [(c, self.kind.deferred[c], pairs) for c, pairs in self._deferred.items()]


# -- the operation ---------------------------------------------------------------------------


def do_import_workspace(
    db: Database,
    path: Path,
    workspace: str,
    data_dir: Path,
    *,
    actor: str = "puente import",
    progress: Progress | None = None,
) -> ImportResult:
    """Load the archive at `path` into the workspace called `workspace` (created when it
    does not exist; refused when it has data). Refused before any write when the archive
    is incomplete, damaged or newer than this Puente."""
    report = progress or (lambda what, done, total: None)
    with archive.open_archive(path) as zf:
        manifest = check_archive(zf, report)
        with db.unit_of_work(unscoped="import: a workspace is created and filled") as session:
            ws = _target(session, workspace, manifest)
            _check_numbers(session, zf)
            # Nothing written before this line.
            if ws is None:
                ws = do_create_workspace(session, name=workspace, actor=actor)
            set_scope(session, ws.id)
            loader = Loader(session, zf, ws.id, data_dir)
            loader.result.slug = ws.slug
            loader.load_workspace_settings(ws)
            loader.load_users()
            members = set(
                session.scalars(select(Membership.user_id).where(Membership.workspace_id == ws.id))
            )
            for kind in present():
                if kind.table == "memberships":
                    _load_memberships(loader, kind, members, report)
                else:
                    loader.load(kind, manifest.rows(kind.table), report)
            loader.finish_deferred()
            loader.copy_media(manifest, report)
            audit.record(
                session,
                workspace_id=ws.id,
                actor=actor,
                action=WORKSPACE_IMPORTED,
                target=f"workspace {ws.id}",
                details={
                    "source": manifest.workspace.get("slug"),
                    "exported_at": manifest.exported_at,
                    "messages": loader.result.rows.get("messages", 0),
                },
            )
            return loader.result


def _load_memberships(loader: Loader, kind: Kind, members: set[int], progress: Progress) -> None:
    # A person who is a member of the target already keeps their role there.
    rows = list(archive.read_lines(loader.zf, archive.data_name(kind.table)))
    keep = [r for r in rows if loader.users.get(int(r["user_id"])) not in members]
    plan = _Plan(loader, kind, table(kind.table))
    if keep:
        plan.insert(keep)
    loader.result.rows[kind.table] = plan.inserted
    progress(kind.table, plan.inserted, len(rows))
