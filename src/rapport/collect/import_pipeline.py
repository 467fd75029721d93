"""Big import files are read and validated in a second process while this one writes.

An import's work splits in two: the pure part (read the file, parse each line, validate it by the tracking
API's rules, normalise identifiers: :func:`importer.prepare_events` / :func:`importer.prepare_profiles`)
and the database part (known messageIds, identity resolution, inserts, commit: ``importer.apply_*``). The
pure part is about half of the CPU an event costs, so for a file of a few megabytes or more a reader
process does it and hands prepared batches over a pipe (it stays about a batch ahead: memory stays flat) while
this process writes the previous ones. Same rows, same order, same row numbers, same errors as the
single-process path; an exception in the reader is raised here, unchanged.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rapport.collect import identity as ident
from rapport.collect.importer import Prepared

#: Files at least this big are read in a second process (below it, starting one costs more than it saves).
PIPELINE_MIN_BYTES = 4 * 1024 * 1024
_HEAD = struct.Struct("!Q")


@dataclass(frozen=True)
class _Done:
    """The reader's last message: how it ended."""

    error: BaseException | None = None
    description: str = ""


def use_pipeline(path: Path, requested: bool | None) -> bool:
    """Tell whether to read ``path`` in a second process: as requested, else when the file is big and
    this machine has a second core for it."""
    if requested is not None:
        return requested
    return (os.cpu_count() or 1) > 1 and path.stat().st_size >= PIPELINE_MIN_BYTES


def prepared_batches(
    path: Path,
    *,
    fmt: str,
    kind: str,
    mapping: Mapping[str, str] | None,
    rules: ident.IdentityRules,
    now: datetime,
    batch_size: int,
) -> Iterator[Prepared]:
    """Yield the file's prepared batches, made by a reader process (see the module docstring).

    The reader is a fresh interpreter (``python -c``), not a fork (this process may run threads: the
    server, the worker) nor multiprocessing's spawn (which re-runs the caller's main script). Batches come
    back over its stdout as length-prefixed pickles; the pipe's buffer keeps it at most a batch ahead."""
    job = (str(path), fmt, kind, dict(mapping or {}), rules, now, batch_size)
    reader = subprocess.Popen(
        [sys.executable, "-c", "from rapport.collect.import_pipeline import main; main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert reader.stdin is not None and reader.stdout is not None
    try:
        reader.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        reader.stdin.close()
        while True:
            item = _receive(reader.stdout)
            if item is None:
                code = reader.wait()
                raise RuntimeError(f"the import's reader process stopped unexpectedly (exit code {code})")
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                if item.description:
                    raise RuntimeError(item.description)
                return
            yield item
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.wait()
        reader.stdout.close()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)  # noqa: S301 (frames our own reader process wrote)


def _send(stream: IO[bytes], item: Any) -> None:
    body = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEAD.pack(len(body)))
    stream.write(body)
    stream.flush()


def main() -> None:
    """The reader process: read the job from stdin, send every prepared batch, then a ``_Done``."""
    from rapport.collect.import_files import read_rows
    from rapport.collect.importer import batches, prepare_events, prepare_profiles

    # The frames get the original stdout to themselves; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    path, fmt, kind, mapping, rules, now, batch_size = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    prepare = prepare_profiles if kind == "profiles" else prepare_events
    try:
        rows = read_rows(Path(path), fmt=fmt, kind=kind, mapping=mapping or None)
        for batch in batches(rows, batch_size):
            _send(out, prepare(batch, rules, now))
    except BrokenPipeError:
        return  # the importing process stopped reading (it failed or was interrupted)
    except Exception as exc:  # handed to the importing process, which raises it
        try:
            pickle.loads(pickle.dumps(exc))  # noqa: S301 (can it travel? our own object)
            done = _Done(error=exc)
        except Exception:
            done = _Done(description=f"{type(exc).__name__}: {exc}")
        _send(out, done)
    else:
        _send(out, _Done())
