"""The send journal file (messaging/journal.py): what a killed worker stored is there for recovery."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from rapport.messaging import journal

KILLED_WORKER = """
import os, signal, sys
from pathlib import Path
from rapport.messaging.journal import SendJournal
j = SendJournal(Path(sys.argv[1]), "w1", size=4096)
for i in range(300):
    j.committing(f"m{i}")
    if i % 3:
        j.accepted(f"m{i}", f"q{i}")
print("stored", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_worker_leaves_every_stored_line_for_recovery(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WORKER, str(spool)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -9 and "stored" in done.stdout, done.stderr
    found = list(journal.orphaned(spool))  # its lock died with it
    assert [path.name for path, _fd in found] == ["w1.journal"]
    path, fd = found[0]
    state = journal.read(path)
    journal.release(path, fd)
    assert state.committing == {f"m{i}" for i in range(300)}  # grown well past the first 4 KB
    assert state.accepted == {f"m{i}": f"q{i}" for i in range(300) if i % 3}
    assert state.outcome("m0") == "unknown" and state.outcome("m1") == "sent"
    assert state.outcome("m300") == "not_sent"
    assert not path.exists()


def test_a_live_journal_is_locked_reset_and_removed_on_close(tmp_path: Path) -> None:
    live = journal.SendJournal(tmp_path, "w2")
    live.committing("a")
    assert list(journal.orphaned(tmp_path)) == []  # a live worker's journal is not an orphan
    assert journal.read(live.path).committing == {"a"}
    live.reset()
    live.committing("b")
    assert journal.read(live.path).committing == {"b"}
    live.close()
    assert not live.path.exists()


def test_a_line_cut_short_by_the_kill_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "w3.journal"
    path.write_bytes(b"C one\nA one q1\nC two\nA tw" + b"\0" * 100)
    state = journal.read(path)
    assert state.outcome("one") == "sent"
    assert state.outcome("two") == "unknown"  # its "A" line never finished: maybe sent, not resent
    path.write_bytes(b"C one\nC tw\0o\n")
    assert journal.read(path).committing == {"one"}


def test_lines_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    live = journal.SendJournal(tmp_path, "w4", size=4096)

    def write(n: int) -> None:
        for i in range(400):
            live.committing(f"t{n}-{i}")
            live.accepted(f"t{n}-{i}", None)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = journal.read(live.path)
    live.close()
    expected = {f"t{n}-{i}" for n in range(8) for i in range(400)}
    assert state.committing == expected
    assert state.accepted == dict.fromkeys(expected)
