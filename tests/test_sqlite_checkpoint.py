"""SQLite's WAL checkpoints run in a background thread (rapport.db.checkpoint), not in the writer's COMMIT.

Writers turn SQLite's automatic checkpoint off; the process's checkpointer thread for the file copies the log
back once it passes its threshold, and stops with the last connection. What proves each point is on disk:
the log and the database file's sizes say who copied what."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rapport.db import checkpoint
from rapport.db.engine import build_engine

_ROW = "x" * 4000  # about a page per row
_MB = 1024 * 1024


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wal.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = build_engine(f"sqlite:///{db_path}", pool_size=2)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    yield engine
    engine.dispose()


def _write(engine: Engine, megabytes: int) -> None:
    rows = [{"body": _ROW} for _ in range(256)]  # ~1 MB a transaction
    for _ in range(megabytes):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (body) VALUES (:body)"), rows)


def _wait_for(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_writers_never_checkpoint(engine: Engine, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "THRESHOLD", 10**12)  # the thread never finds the log big enough
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    _write(engine, 12)
    # SQLite's automatic checkpoint would have copied the log into the file at 1,000 pages (~4 MB) and
    # started the log over: here all 12 MB are still in the log and the file holds none of it.
    assert os.path.getsize(f"{db_path}-wal") >= 12 * _MB
    assert os.path.getsize(db_path) < _MB


def test_the_checkpointer_copies_the_log_past_its_threshold(
    engine: Engine, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "THRESHOLD", 2 * _MB)
    _write(engine, 1)
    checkpointer = checkpoint.running(str(db_path))
    assert checkpointer is not None and checkpointer.alive
    assert checkpointer.checkpoints == 0  # under the threshold: nothing to do
    _write(engine, 5)
    assert _wait_for(lambda: checkpointer.checkpoints >= 1), "no checkpoint"
    assert os.path.getsize(db_path) >= 5 * _MB  # the log was copied back into the file
    # once copied, the log starts over: writing as much again does not double it
    wal_after_first = os.path.getsize(f"{db_path}-wal")
    done = checkpointer.checkpoints
    _write(engine, 5)
    assert _wait_for(lambda: checkpointer.checkpoints > done and os.path.getsize(db_path) >= 10 * _MB)
    assert os.path.getsize(f"{db_path}-wal") <= wal_after_first + 3 * _MB
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 11 * 256


def test_one_thread_per_file_stopped_with_the_last_connection(db_path: Path) -> None:
    first = build_engine(f"sqlite:///{db_path}", pool_size=2)
    second = build_engine(f"sqlite:///{db_path}", pool_size=2)
    first.raw_connection().close()  # opens one pooled connection each (back to the pool, still open)
    second.raw_connection().close()
    checkpointer = checkpoint.running(str(db_path))
    assert checkpointer is not None and checkpointer.users == 2
    first.dispose()
    assert checkpoint.running(str(db_path)) is checkpointer and checkpointer.users == 1
    second.dispose()
    assert checkpoint.running(str(db_path)) is None
    checkpointer.join(timeout=5)
    assert not checkpointer.alive
    # a new connection on the file starts a new one
    third = build_engine(f"sqlite:///{db_path}")
    third.raw_connection().close()
    again = checkpoint.running(str(db_path))
    assert again is not None and again is not checkpointer and again.alive
    third.dispose()
    assert checkpoint.running(str(db_path)) is None


def test_when_the_last_connection_closes_the_file_holds_everything(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database file alone (copied without its log) must have every committed row once a process has
    # closed its connections: benchmarks copy stores this way, and so does anyone backing up a file.
    monkeypatch.setattr(checkpoint, "THRESHOLD", _MB)
    engine = build_engine(f"sqlite:///{db_path}", pool_size=2)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    _write(engine, 2)
    checkpointer = checkpoint.running(str(db_path))
    assert checkpointer is not None
    assert _wait_for(lambda: checkpointer.checkpoints >= 1)  # its own connection is open now
    monkeypatch.setattr(checkpoint, "INTERVAL", 30.0)  # asleep when the engine closes ...
    monkeypatch.setattr(checkpoint, "THRESHOLD", 10**12)
    time.sleep(0.2)
    _write(engine, 1)  # ... with these rows in the log only
    engine.dispose()
    copy = tmp_path / "copy.db"
    copy.write_bytes(db_path.read_bytes())
    raw = sqlite3.connect(copy)
    try:
        assert raw.execute("SELECT count(*) FROM t").fetchone()[0] == 3 * 256
    finally:
        raw.close()


def _busy_writer(engine: Engine, db_path: Path, megabytes: int) -> int:
    """Commit ~64 KB transactions back to back until ``megabytes`` are written; return the largest log seen."""
    rows = [{"body": _ROW} for _ in range(16)]
    largest = 0
    for _ in range(megabytes * 16):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (body) VALUES (:body)"), rows)
        with contextlib.suppress(FileNotFoundError):
            largest = max(largest, os.path.getsize(f"{db_path}-wal"))
    return largest


def test_the_log_starts_over_under_a_writer_that_never_pauses(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpoint beside a writer committing back to back never finds the log complete, so the log never
    # started over and grew by everything written (22 GB into a million-customer import). The second pass,
    # with the process's write gate held, copies the remainder and the log starts over: it stays far below
    # what was written (without the second pass it held all of it).
    monkeypatch.setattr(checkpoint, "THRESHOLD", _MB)
    monkeypatch.setattr(checkpoint, "INTERVAL", 0.01)
    engine = build_engine(f"sqlite:///{db_path}", pool_size=2)  # its checkpointer starts with these
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        largest = _busy_writer(engine, db_path, 48)
        checkpointer = checkpoint.running(str(db_path))
        assert checkpointer is not None and checkpointer.checkpoints >= 3
        assert largest < 24 * _MB, f"the log grew to {largest / _MB:.1f} MB for 48 MB written"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 48 * 16 * 16
    finally:
        engine.dispose()
