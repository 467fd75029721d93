"""SQLite WAL checkpoints in a background thread instead of in whichever transaction happens to commit.

SQLite's automatic checkpoint runs inside the COMMIT that grows the write-ahead log past 1,000 pages: that
writer copies the log back into the database file and syncs it before its commit returns. With ingest's
group commits filling the log, every few commits one of them did this work, and so did the processor's or
the deliverer's commit when its turn came: on an events table of 300k rows an ingest INSERT of 1,600 rows
took 53 ms with the automatic checkpoint and 25 ms without it (bench: B1, B2, B5 on SQLite).

Every connection Rapport opens on a database file therefore turns the automatic checkpoint off
(``PRAGMA wal_autocheckpoint=0``) and attaches to this process's ``WalCheckpointer`` for that file: a daemon
thread that looks at the size of the ``-wal`` file every ``INTERVAL`` seconds and, past ``THRESHOLD`` bytes,
runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own. A passive checkpoint waits for nobody:
writers go on appending to the log while it copies. The log restarts from its beginning at the first write
after a *complete* checkpoint, though, and with a writer committing back to back (an import, ingest under
load) a checkpoint running beside it never is: frames keep arriving while it copies, and the log grew by
everything written (6 GB in the first minutes of a million-customer import). So a second pass follows
while the thread holds this process's write gate (``db/engine.py``; first come, first served, so it goes
after the writers already waiting and before any that come after it asked): no writer of the process
appends, the pass copies only what arrived during the first one, and the next write starts the log over. The gate is
held for that remainder alone, not for the bulk of the copy that the writer's COMMIT used to do.
``journal_size_limit`` (set on every connection) then truncates the file back when the log restarts.
The thread stops when the last connection of the process on that file closes (SQLite checkpoints and
removes the log itself when the last connection of all closes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from rapport.db.gate import FairGate

log = logging.getLogger("rapport.db.checkpoint")

#: Seconds between looks at the log's size.
INTERVAL = 0.05
#: Log size that starts a checkpoint (SQLite's automatic one starts at 1,000 pages, about 4 MB).
THRESHOLD = 8 * 1024 * 1024
#: Seconds the second pass waits for the write gate before leaving the remainder to the next look.
GATE_WAIT = 5.0


class WalCheckpointer:
    """Checkpoints one database file's write-ahead log from a thread while connections are attached."""

    def __init__(self, path: str, gate: FairGate | None = None) -> None:
        self.path = path
        self.gate = gate
        self.wal = path + "-wal"
        self.users = 0
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"rapport-checkpoint:{Path(path).name}", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (it does within INTERVAL)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Tell whether the thread is running."""
        return self._thread.is_alive()

    def due(self) -> bool:
        """Tell whether the log has grown past THRESHOLD."""
        try:
            return os.stat(self.wal).st_size >= THRESHOLD
        except FileNotFoundError:
            return False

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the log back: a passive pass beside the writers, then the remainder with the gate held."""
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if self.gate is not None and self.gate.acquire(timeout=GATE_WAIT):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                self.gate.release()
        self.checkpoints += 1

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(INTERVAL):
                if not self.due():
                    continue
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
                        conn.execute("PRAGMA wal_autocheckpoint=0")
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # busy, or the file went away: the next look tries again
                    log.debug("checkpoint of %s failed: %s", self.path, exc)
        finally:
            if conn is not None:
                conn.close()


_lock = threading.Lock()
_running: dict[tuple[int, str], WalCheckpointer] = {}


def _key(path: str) -> tuple[int, str]:
    return os.getpid(), str(Path(path).resolve())


def attach(path: str, gate: FairGate | None = None) -> None:
    """Count one more connection of this process on ``path``; start its checkpointer if none runs.

    ``gate``: the file's in-process write gate, held for the checkpoint's second pass."""
    key = _key(path)
    with _lock:
        checkpointer = _running.get(key)
        if checkpointer is None:
            checkpointer = _running[key] = WalCheckpointer(key[1], gate)
            checkpointer.start()
        checkpointer.users += 1


def detach(path: str) -> None:
    """Count one connection fewer on ``path``; stop its checkpointer with the last one, and wait for it.

    Waiting matters: while the thread's own connection is open, the closing connection was not the last
    one, so SQLite did not checkpoint the log into the file as it does when the last connection closes;
    the thread's connection, closed now, is the last one and does. Once every connection of a process is
    closed, the database file alone holds everything committed (a copy of it, a backup, another tool)."""
    key = _key(path)
    with _lock:
        checkpointer = _running.get(key)
        if checkpointer is None:
            return
        checkpointer.users -= 1
        if checkpointer.users > 0:
            return
        del _running[key]
        checkpointer.stop()
    checkpointer.join(timeout=60)  # never this thread: it closes a plain sqlite3 connection, not ours


def running(path: str) -> WalCheckpointer | None:
    """This process's checkpointer of ``path``, if one runs (tests, diagnostics)."""
    with _lock:
        return _running.get(_key(path))
