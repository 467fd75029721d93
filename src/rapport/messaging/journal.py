"""A per-worker send journal that lets a restarted worker settle what a killed one left "sending" (R6, R8).

The outbox claims a batch (status ``sending``) in one transaction, hands it to a channel, and records the
results in another. If the worker dies in between, the database alone cannot tell which messages the
provider already has. The journal can: the channel writes ``C <id>`` just before the point of no return
(the SMTP end-of-data dot, the HTTP request) and ``A <id>`` when the provider accepted it. Lines are
stored into a shared memory mapping of the file (``MAP_SHARED``): a killed process loses nothing it
stored, since the pages belong to the kernel's page cache (a crashed machine may lose them; the outbox
then falls back to "unknown"). A store is not a system call, so it never lets another thread take the
interpreter between ``C`` and the "." that follows it: with several SMTP connections sending from
several threads, the span in which a kill leaves a message "unknown" although the server never got its
"." stays a few bytecodes long, as with one connection (a ``write(2)`` there would release the GIL and
let a busy thread hold it for milliseconds).

Recovery of a dead worker's journal: ``A`` → sent; ``C`` without ``A`` → unknown (maybe sent: never
resent blindly, R8); neither → the provider never saw it, safe to send again. Live workers hold an
exclusive ``flock`` on their journal, which is how a peer tells a dead worker's file from a live one's.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class JournalState:
    """What one dead worker's journal says about its messages."""

    committing: set[str] = field(default_factory=set)
    accepted: dict[str, str | None] = field(default_factory=dict)

    def outcome(self, message_id: str) -> str:
        """Return "sent", "unknown" or "not_sent" for one message."""
        if message_id in self.accepted:
            return "sent"
        if message_id in self.committing:
            return "unknown"
        return "not_sent"


def safe_name(worker_id: str) -> str:
    """Return ``worker_id`` reduced to characters safe in a file name (and used as ``claimed_by``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in worker_id)


class SendJournal:
    """The journal of one live worker; implements the channels' ``SendJournal`` protocol; thread-safe."""

    def __init__(self, directory: Path, worker_id: str, *, size: int = 1 << 20) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{safe_name(worker_id)}.journal"
        # Lock before the file is visible under its name: a peer's recovery must never see it unlocked.
        hidden = directory / f".{safe_name(worker_id)}.{os.getpid()}.opening"
        self._fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, self.path)
        self._lock = threading.Lock()
        self._used = 0
        self._map = self._mapping(max(size, 4096))

    def _mapping(self, size: int) -> mmap.mmap:
        os.ftruncate(self._fd, size)  # a sparse file: unwritten bytes read as NUL
        return mmap.mmap(self._fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def _store(self, line: bytes) -> None:
        with self._lock:
            end = self._used + len(line)
            if end > len(self._map):  # grow before storing: the line is complete when it is visible
                old = self._map
                self._map = self._mapping(max(2 * len(old), end + 4096))
                old.close()
            self._map[self._used : end] = line
            self._used = end

    def committing(self, message_id: str) -> None:
        """Record that the provider may have ``message_id`` from now on."""
        self._store(f"C {message_id}\n".encode())

    def accepted(self, message_id: str, provider_id: str | None) -> None:
        """Record that the provider accepted ``message_id``."""
        self._store(f"A {message_id} {provider_id or '-'}\n".encode())

    def reset(self) -> None:
        """Forget entries once their results are committed to the database."""
        with self._lock:
            self._map[: self._used] = bytes(self._used)
            self._used = 0

    def close(self) -> None:
        """Close and delete the journal (a clean shutdown has nothing to recover)."""
        try:
            self._map.close()
            os.ftruncate(self._fd, 0)
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)


def read(path: Path) -> JournalState:
    """Parse a journal file (a line cut short by the kill, without its newline, is not a record)."""
    state = JournalState()
    text = path.read_bytes().split(b"\0", 1)[0].decode("utf-8", errors="replace")
    for line in text.split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) >= 2 and parts[0] == "C":
            state.committing.add(parts[1])
        elif len(parts) >= 3 and parts[0] == "A":
            state.accepted[parts[1]] = None if parts[2] == "-" else parts[2]
    return state


def orphaned(directory: Path) -> Iterator[tuple[Path, int]]:
    """Yield (path, locked fd) for each journal whose worker is dead; the caller reads, settles, then
    calls ``release``. Journals of live workers are skipped (their lock is held)."""
    if not directory.exists():
        return
    for path in sorted(directory.glob("*.journal")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        yield path, fd


def release(path: Path, fd: int) -> None:
    """Delete a settled orphan journal and drop its lock."""
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
