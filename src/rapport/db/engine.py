"""Engine construction: SQLite in WAL mode (embedded default) or PostgreSQL through psycopg 3."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rapport.db import checkpoint
from rapport.db.gate import FairGate
from rapport.kit import fastjson


def normalize_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` to the psycopg 3 driver; leave others alone."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url_or_engine: str | Engine) -> bool:
    """Tell whether a URL or engine is SQLite."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine.dialect.name == "sqlite"
    return make_url(normalize_url(url_or_engine)).get_backend_name() == "sqlite"


#: Bytes the write-ahead log file is truncated back to when it restarts.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA cache_size=-65536")
    # when the log starts over after a checkpoint, its file is cut back to this (a burst leaves no giant file)
    cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    cursor.close()


#: How long a writer waits for this process's turn before trying SQLite's lock anyway (its busy timeout).
GATE_TIMEOUT = 30.0

_gates: dict[str, FairGate] = {}
_gates_lock = threading.Lock()


def _gate_for(database: str) -> FairGate:
    """The write gate of one SQLite database file, shared by every engine of this process on it (handed
    on in arrival order, ``db/gate.py``: the checkpointer's second pass too goes before the writers that
    ask after it)."""
    key = str(Path(database).resolve()) if database and database != ":memory:" else f"memory:{database}"
    with _gates_lock:
        return _gates.setdefault(key, FairGate())


class GatedConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions queue at its database's in-process write gate.

    SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's busy
    handler in growing steps (1, 2, 5, … up to 100 ms) however soon the lock frees, with no order among
    the waiters: with the ingest committer, the event processor and the deliverer of one process all
    writing, that polling put hundreds of milliseconds into the tail of B5's real-time chain. Threads of
    one process therefore take turns at a gate of this process (handed to the longest waiter the moment
    a transaction commits or rolls back) before asking SQLite; another process (a separate ``rapport
    worker``) still meets them at SQLite's own lock, its busy timeout as before."""

    gate: FairGate | None = None
    holding = False
    #: The database file whose background checkpointer this connection counts in (rapport.db.checkpoint).
    checkpointed: str | None = None

    def attach_checkpointer(self, path: str) -> None:
        """Leave this connection's WAL checkpoints to the process's checkpointer thread of ``path``."""
        self.execute("PRAGMA wal_autocheckpoint=0")
        checkpoint.attach(path, self.gate)
        self.checkpointed = path

    def take_gate(self) -> None:
        """Wait for this process's write turn (give up after GATE_TIMEOUT: SQLite's busy timeout decides)."""
        if self.gate is not None and not self.holding:
            self.holding = self.gate.acquire(timeout=GATE_TIMEOUT)

    def release_gate(self) -> None:
        """Hand the write turn on (no-op when this connection does not hold it)."""
        if self.holding and self.gate is not None:
            self.holding = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_gate()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_gate()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_gate()
            if self.checkpointed is not None:
                path, self.checkpointed = self.checkpointed, None
                checkpoint.detach(path)


@contextlib.contextmanager
def write_turn(raw: Any) -> Iterator[None]:
    """Hold this process's write gate around a statement run outside a transaction (an autocommit
    INSERT takes SQLite's write lock like BEGIN IMMEDIATE); any other connection: nothing."""
    if not isinstance(raw, GatedConnection):
        yield
        return
    raw.take_gate()
    try:
        yield
    finally:
        raw.release_gate()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT, so we emit BEGIN ourselves.
    # Writers take the lock up front (IMMEDIATE): a deferred transaction that reads and then writes can
    # fail with SQLITE_BUSY_SNAPSHOT instead of waiting. Read-only sessions opt out with readonly=True.
    # Writers of this process first queue at its write gate (GatedConnection), released at commit/rollback.
    if conn.get_execution_options().get("readonly"):
        conn.exec_driver_sql("BEGIN")
        return
    raw = conn.connection.driver_connection
    if isinstance(raw, GatedConnection):
        raw.take_gate()
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if isinstance(raw, GatedConnection):
            raw.release_gate()
        raise


def build_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create the engine for ``url``; nothing connects until first use."""
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={
                "check_same_thread": False,
                "timeout": 30,
                "isolation_level": None,
                "factory": GatedConnection,
            },
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            # as on PostgreSQL (below): loading a batch's profiles on SQLite, 13.6 -> 11.0 µs a row
            json_deserializer=fastjson.loads,
        )
        database = make_url(url).database or ""
        gate = _gate_for(database)
        on_file = database not in ("", ":memory:") and not database.startswith("file:")

        def _connected(dbapi_connection: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, record)
            if isinstance(dbapi_connection, GatedConnection):
                dbapi_connection.gate = gate
                if on_file:
                    dbapi_connection.attach_checkpointer(database)

        event.listen(engine, "connect", _connected)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,  # see ping_when_idle
        # json/jsonb columns read through orjson where it gives json.loads's answer (several times faster:
        # a real-time batch reads the traits, events and computed documents of every profile it touches)
        json_deserializer=fastjson.loads,
    )
    ping_when_idle(engine, idle_seconds=IDLE_PING_SECONDS)
    return engine


#: A pooled PostgreSQL connection that sat unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 2.0
_RETURNED = "rapport.returned"


def ping_when_idle(engine: Engine, *, idle_seconds: float) -> None:
    """Check a pooled connection before use when it sat idle for over ``idle_seconds``, as SQLAlchemy's
    ``pool_pre_ping`` does before every use.

    A dead connection (the server restarted, an idle timeout, a proxy) is found where it matters: one that
    waited in the pool. A connection handed back moments ago was alive then; pinging it costs a round trip
    for nothing, and a busy process checks out connections hundreds of times a second (a worker's cycle
    takes three, an ingest group commit one). A connection that dies in between fails its statement, as
    one that dies just after a ping would: SQLAlchemy then invalidates the pool, and the caller's retry
    (the worker's next cycle, a client's resend) gets fresh connections. A ping that finds the connection
    dead raises ``DisconnectionError``: the pool discards it and hands out another."""

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # ``record.info`` belongs to the DBAPI connection: the pool clears it whenever it connects anew
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned <= idle_seconds:
            return  # connected just now for this checkout, or handed back moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.DisconnectionError(f"pooled connection found dead: {error}") from error
            raise


def build_sessionmaker(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """Return the session factory the edges (requests, tasks, CLI) open their transactions with.

    ``readonly=True`` gives sessions that do not take SQLite's write lock (long reads such as segment
    counts must not stall ingestion); on PostgreSQL both kinds are the same.
    """
    bind = engine.execution_options(readonly=True) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=True)
