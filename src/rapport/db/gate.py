"""A lock handed to its waiters in the order they came: the write gate of one SQLite file in one process.

``threading.Lock`` is not fair. A thread that commits and starts its next write transaction at once (the
event processor working through a backlog) can take the lock again before a waiting thread runs, on a
loaded machine (tests/test_sqlite_write_gate.py caught it 1 time in 5 beside two busy processes), so the
others (the deliverer's claim, the ingest committer) could wait several of its transactions for one of
theirs. A ``FairGate`` hands the lock straight to the longest waiter when it is released: every writer of
the process gets its turn after at most one transaction of each writer ahead of it.

Example::

    gate = FairGate()
    if gate.acquire(timeout=30):
        try:
            ...  # BEGIN IMMEDIATE … COMMIT
        finally:
            gate.release()
"""

from __future__ import annotations

import threading
from collections import deque


class FairGate:
    """A non-reentrant lock granted first come, first served."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float = -1) -> bool:
        """Take the gate, waiting behind earlier callers; False when ``timeout`` seconds passed first."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True  # handed over by release(): the gate stayed held, now by this thread
        with self._mutex:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True  # handed over just as the wait timed out: it is ours all the same
            return False

    def release(self) -> None:
        """Hand the gate to the longest waiter, or free it when nobody waits."""
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of a gate that is not held")
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    def locked(self) -> bool:
        """Whether some thread holds the gate."""
        return self._held

    def queued(self) -> int:
        """How many threads wait for the gate."""
        return len(self._waiters)
