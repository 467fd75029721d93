"""PostgreSQL's pooled connections are pinged before use only when they sat idle (db/engine.py,
``ping_when_idle``): a connection the server dropped while it waited in the pool is replaced before anyone
uses it, and one handed back moments ago is used without the extra round trip."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from rapport.db import engine as engine_module
from rapport.db.engine import build_engine
from tests.support.databases import PostgresFactory


def _engine(pg_factory: PostgresFactory, monkeypatch: pytest.MonkeyPatch, idle: float) -> Iterator[Engine]:
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", idle)
    engine = build_engine(pg_factory.shared_url(), pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(pg_factory: PostgresFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine whose pooled connection counts as idle after 0.3 s."""
    yield from _engine(pg_factory, monkeypatch, 0.3)


@pytest.fixture
def patient_engine(pg_factory: PostgresFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine whose pooled connection counts as idle only after an hour."""
    yield from _engine(pg_factory, monkeypatch, 3600.0)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pg_factory: PostgresFactory, pid: int) -> None:
    other = build_engine(pg_factory.shared_url(), pool_size=1)
    try:
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            # wait until the backend is gone, so the pooled connection is dead when it is next used
            for _ in range(200):
                alive = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
                if not alive:
                    break
                conn.execute(text("SELECT pg_sleep(0.01)"))
    finally:
        other.dispose()


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        seen.append(dbapi_connection)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return seen


def test_a_connection_dropped_while_idle_in_the_pool_is_replaced_before_use(
    engine: Engine, pg_factory: PostgresFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(engine)
    _terminate(pg_factory, first)
    pings = _pings(engine, monkeypatch)
    time.sleep(0.4)  # longer than the idle limit
    second = _backend_pid(engine)  # no error: the ping found the dead connection and the pool replaced it
    assert second != first
    assert len(pings) == 1


def test_a_connection_handed_back_moments_ago_is_used_without_a_ping(
    patient_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = patient_engine
    pings = _pings(engine, monkeypatch)
    pids = {_backend_pid(engine) for _ in range(20)}
    assert len(pids) == 1  # the same pooled connection every time
    assert pings == []


def test_a_connection_dropped_just_after_use_fails_once_then_the_pool_recovers(
    patient_engine: Engine, pg_factory: PostgresFactory
) -> None:
    """The trade-off, as with a connection that dies just after a ping: its next statement fails (the
    caller retries), SQLAlchemy invalidates the pool, and the next checkout connects afresh."""
    engine = patient_engine
    first = _backend_pid(engine)
    _terminate(pg_factory, first)
    with pytest.raises(OperationalError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _backend_pid(engine) != first
