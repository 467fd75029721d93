"""Engine construction: SQLite in WAL mode (embedded default) or PostgreSQL through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT, so we emit BEGIN ourselves.
    # Writers take the lock up front (IMMEDIATE): a deferred transaction that reads and then writes can
    # fail with SQLITE_BUSY_SNAPSHOT instead of waiting. Read-only sessions opt out with readonly=True.
    if conn.get_execution_options().get("readonly"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def build_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create the engine for ``url``; nothing connects until first use."""
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # json/jsonb columns read through orjson where it gives json.loads's answer (several times faster:
        # a real-time batch reads the traits, events and computed documents of every profile it touches)
        json_deserializer=fastjson.loads,
    )


def build_sessionmaker(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """Return the session factory the edges (requests, tasks, CLI) open their transactions with.

    ``readonly=True`` gives sessions that do not take SQLite's write lock (long reads such as segment
    counts must not stall ingestion); on PostgreSQL both kinds are the same.
    """
    bind = engine.execution_options(readonly=True) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=True)
