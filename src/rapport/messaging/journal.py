"""A per-worker send journal that lets a restarted worker settle what a killed one left "sending" (R6, R8).

The outbox claims a batch (status ``sending``) in one transaction, hands it to a channel, and records the
results in another. If the worker dies in between, the database alone cannot tell which messages the
provider already has. The journal can: the channel writes ``C <id>`` just before the point of no return
(the SMTP end-of-data dot, the HTTP request) and ``A <id>`` when the provider accepted it. Each line is a
single unbuffered ``write(2)``: a killed process loses nothing it wrote (a crashed machine may; the
outbox then falls back to "unknown").

Recovery of a dead worker's journal: ``A`` → sent; ``C`` without ``A`` → unknown (maybe sent: never
resent blindly, R8); neither → the provider never saw it, safe to send again. Live workers hold an
exclusive ``flock`` on their journal, which is how a peer tells a dead worker's file from a live one's.
"""

from __future__ import annotations

import fcntl
import os
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
    """The journal of one live worker; implements the channels' ``SendJournal`` protocol."""

    def __init__(self, directory: Path, worker_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{safe_name(worker_id)}.journal"
        # Lock before the file is visible under its name: a peer's recovery must never see it unlocked.
        hidden = directory / f".{safe_name(worker_id)}.{os.getpid()}.opening"
        self._fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, self.path)

    def committing(self, message_id: str) -> None:
        """Record that the provider may have ``message_id`` from now on."""
        os.write(self._fd, f"C {message_id}\n".encode())

    def accepted(self, message_id: str, provider_id: str | None) -> None:
        """Record that the provider accepted ``message_id``."""
        os.write(self._fd, f"A {message_id} {provider_id or '-'}\n".encode())

    def reset(self) -> None:
        """Forget entries once their results are committed to the database."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Close and delete the journal (a clean shutdown has nothing to recover)."""
        try:
            os.ftruncate(self._fd, 0)
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)


def read(path: Path) -> JournalState:
    """Parse a journal file."""
    state = JournalState()
    for line in path.read_text(errors="replace").splitlines():
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
