"""Engine creation and the unit of work.

The unit of work owns the transaction. Services only flush; side effects that must
not happen for a rolled-back change (realtime events, wake-ups, outgoing webhooks)
are registered with `on_commit` and run after the commit succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import NullPool

from puente import foreground
from puente.db import scope as scoping
from puente.db.scope import Scope

log = logging.getLogger(__name__)

_CALLBACKS_KEY = "puente_on_commit"
# In `Session.info` of every session from `Database.read()`.
READ_ONLY = "puente_read_only"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA cache_size=-64000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_query_only(dbapi_conn: Any, _record: Any) -> None:
    # Reader connections refuse writes, so a write slipped into a read path fails loudly
    # ("attempt to write a readonly database") instead of being rolled back in silence.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=1")
    cur.close()


def make_engine(url: str, *, pool_size: int = 10, immediate: bool = True) -> Engine:
    """An engine; on SQLite `immediate` makes every transaction take the write lock first,
    and an engine without it is for readers only (its connections are query-only)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=pool_size,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if not immediate:
            event.listen(engine, "connect", _sqlite_query_only)
        # pysqlite's own transaction handling defers BEGIN; issue BEGIN ourselves so that
        # a write transaction takes the lock up front instead of failing to upgrade later.
        event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(engine, "begin", lambda c: c.exec_driver_sql(begin))
        return engine
    if url == "postgresql+psycopg://" or "nullpool" in url:
        return create_engine(url, poolclass=NullPool)
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction commits; drop it on rollback."""
    session.info.setdefault(_CALLBACKS_KEY, []).append(callback)


def _run_after_commit(session: Session) -> None:
    # SQLAlchemy fires after_commit when a savepoint is released too: the transaction
    # has not committed then, and a worker woken now (another process on PostgreSQL)
    # would look for rows it cannot see yet. Only the outermost commit runs them.
    if session.in_nested_transaction():
        return
    callbacks = session.info.pop(_CALLBACKS_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failed notification must never undo a committed change
            log.exception("after-commit callback failed")


def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_CALLBACKS_KEY, None)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    # Only the whole transaction's rollback drops the callbacks. A savepoint that rolls
    # back (a failed change, a lost insert race) leaves the others' callbacks alone; code
    # that queues callbacks inside a savepoint trims its own (see ingest.process).
    if previous.parent is None:
        _drop_after_rollback(session)


def is_read_only(session: Session) -> bool:
    return bool(session.info.get(READ_ONLY))


def check_nothing_written(session: Session) -> None:
    """Fail if a read session holds changes or after-commit work: its rollback would drop
    them without a word. Pending changes fail at the flush (the connection refuses writes)."""
    session.flush()
    if session.info.get(_CALLBACKS_KEY):
        raise RuntimeError("after-commit work queued on a read-only session")


# Session.info key: the audit log's signing keys (see puente.accounts.audit).
AUDIT_KEYS = "puente.audit_keys"


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        # Shared with every session (the list itself, so keys given later reach them).
        self.audit_keys: list[bytes] = []
        self.session_factory = sessionmaker(
            self.engine, expire_on_commit=False, info={AUDIT_KEYS: self.audit_keys}
        )
        event.listen(self.session_factory, "after_commit", _run_after_commit)
        event.listen(self.session_factory, "after_soft_rollback", _after_soft_rollback)
        scoping.install(self.session_factory)
        # SQLite readers must not queue behind the write lock: they get their own engine
        # with deferred transactions. PostgreSQL needs no such split.
        if self.engine.dialect.name == "sqlite":
            self.read_engine = make_engine(url, pool_size=pool_size, immediate=False)
        else:
            # The same pool; its transactions start with BEGIN READ ONLY (the same guard
            # as SQLite's query-only readers, without a SET TRANSACTION round trip).
            self.read_engine = self.engine.execution_options(postgresql_readonly=True)
        self.read_factory = sessionmaker(
            self.read_engine,
            expire_on_commit=False,
            info={READ_ONLY: True, AUDIT_KEYS: self.audit_keys},
        )
        scoping.install(self.read_factory)

    def use_audit_keys(self, keys: list[bytes]) -> None:
        """Sign the audit log with the first of `keys` from now on; entries signed with any
        key given before still verify (a rotation keeps the old keys after the new)."""
        kept = [k for k in self.audit_keys if k not in keys]
        self.audit_keys[:] = [*keys, *kept]

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def unit_of_work(
        self, *, scope: Scope | int | None = None, unscoped: str | None = None
    ) -> Iterator[Session]:
        """Open a session, commit on success, roll back on any exception. `scope` (a
        workspace id or a scope) limits every query to that workspace; `unscoped` says
        why this work spans workspaces (see `puente.db.scope`)."""
        chosen = scoping.as_scope(scope, unscoped)
        # A reading request that writes stops holding background work back meanwhile:
        # it may have to wait for the write lock a paused worker holds.
        with foreground.writing():
            session = self.session_factory()
            scoping.set_scope(session, chosen)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def read(
        self, *, scope: Scope | int | None = None, unscoped: str | None = None
    ) -> Iterator[Session]:
        """A session for reading only; it never commits. `scope` and `unscoped` as for
        `unit_of_work`."""
        chosen = scoping.as_scope(scope, unscoped)
        session = self.read_factory()
        scoping.set_scope(session, chosen)
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
