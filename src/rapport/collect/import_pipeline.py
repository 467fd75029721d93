"""Big import files are read and validated in a second process while this one writes.

An import's work splits in two: the pure part (read the file, parse each line, validate it by the tracking
API's rules, normalise identifiers: :func:`importer.prepare_events` / :func:`importer.prepare_profiles`)
and the database part (known messageIds, identity resolution, inserts, commit: ``importer.apply_*``). The
pure part is about half of the CPU an event costs, so for a file of a few megabytes or more a reader
process does it and hands prepared batches over a pipe (it stays a few batches ahead: memory stays flat)
while this process writes the previous ones. Same rows, same order, same row numbers, same errors as the
single-process path; an exception in the reader is raised here, unchanged.

Batches travel as orjson, not pickle: unpickling a batch's touches and nested context objects cost the
writer a third of its time (a frame of 5,000 events: ~140 ms to unpickle, ~20 ms from orjson). A batch
orjson cannot hold exactly (an integer past 64 bits, a non-text key) falls back to pickle. A thread here
drains the pipe as frames arrive: a frame of a few megabytes through a 64 KB pipe takes dozens of wake-ups of
both processes, and with the reader blocked in its write until the writer asked for the next batch, the
two took turns instead of working at once (half the time of each was spent waiting for the other).
"""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from rapport.collect import codec
from rapport.collect import identity as ident
from rapport.collect.importer import Prepared, RowError
from rapport.collect.resolution import Touch
from rapport.kit.gcwork import BULK_THRESHOLD

#: Files at least this big are read in a second process (below it, starting one costs more than it saves).
PIPELINE_MIN_BYTES = 4 * 1024 * 1024
_HEAD = struct.Struct("!Q")
#: The pipe buffer asked for (about a frame of 5,000 events); without the privilege, 1 MB.
_PIPE_BYTES = 4 << 20
#: Frame kinds: a batch as orjson, a batch as pickle (fallback), the reader's last message (pickle).
_JSON, _PICKLE, _DONE = b"J", b"P", b"D"
#: The datetime values of a prepared event row (orjson writes them as RFC 3339 text).
_TIME_KEYS = ("timestamp", "received_at", "sent_at")
#: The JSON columns of a prepared event row, sent as their stored text (see :func:`encode`).
_JSON_KEYS = ("properties", "traits", "context", "extra")


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
    back over its stdout as length-prefixed frames (:func:`encode`); the pump thread's queue of two frames
    and the pipe's buffer keep it a few batches ahead at most."""
    job = (str(path), fmt, kind, dict(mapping or {}), rules, now, batch_size)
    reader = subprocess.Popen(
        [sys.executable, "-c", "from rapport.collect.import_pipeline import main; main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert reader.stdin is not None and reader.stdout is not None
    stdout = reader.stdout
    _widen(stdout)
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=2)  # memory stays flat: a few batches at most
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            frame = _receive(stdout)
            while not stop.is_set():
                try:
                    frames.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if frame is None or frame[:1] == _DONE:
                return

    thread = threading.Thread(target=pump, name="import-reader-pipe", daemon=True)
    try:
        reader.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        reader.stdin.close()
        thread.start()
        while True:
            frame = frames.get()
            if frame is None:
                code = reader.wait()
                raise RuntimeError(f"the import's reader process stopped unexpectedly (exit code {code})")
            item = decode(frame)
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                if item.description:
                    raise RuntimeError(item.description)
                return
            yield item
    finally:
        stop.set()
        if reader.poll() is None:
            reader.kill()
        reader.wait()
        if thread.is_alive():
            thread.join()
        stdout.close()


def _widen(pipe: IO[bytes]) -> None:
    """Give the pipe a buffer of a whole frame or so (Linux; 1 MB is allowed to anyone by default): a
    frame then crosses in a few reads, each of which costs the pump thread a turn at the GIL."""
    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is None:  # pragma: no cover (not Linux)
        return
    for size in (_PIPE_BYTES, 1 << 20):
        try:
            fcntl.fcntl(pipe.fileno(), setter, size)
            return
        except OSError:
            continue


def encode(batch: Prepared) -> bytes:
    """One prepared batch as a frame: orjson (dataclasses as objects, datetimes as RFC 3339), else pickle.

    An event's JSON columns travel as the text they are stored as (``codec.dumps_text``, which the insert
    passes through as it is): the writer then neither rebuilds their objects from the frame nor encodes them
    again (a seventh of its time). An alias keeps its objects: its touch is built by the writer from them."""
    if batch.events:  # an events batch (a profiles batch has touches only)
        dumps = codec.dumps_text
        events = [
            row if touch is None else {**row, **{key: dumps(row[key]) for key in _JSON_KEYS}}
            for row, touch in zip(batch.events, batch.touches, strict=True)
        ]
        batch = dataclasses.replace(batch, events=events)
    try:
        return _JSON + orjson.dumps(batch)
    except TypeError:  # orjson.JSONEncodeError: a value JSON cannot hold exactly
        return _PICKLE + pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)


def decode(frame: bytes) -> Any:
    """Rebuild what :func:`encode` (or the reader's last message) put in ``frame``."""
    kind, body = frame[:1], memoryview(frame)[1:]
    if kind != _JSON:
        return pickle.loads(body)  # noqa: S301 (frames our own reader process wrote)
    raw = orjson.loads(body)
    when = datetime.fromisoformat
    events = raw["events"]
    for row in events:
        for key in _TIME_KEYS:
            value = row[key]
            if value is not None:
                row[key] = when(value)
    touches: list[Touch | None] = []
    for t in raw["touches"]:
        if t is not None:
            t["identifiers"] = [(k, v) for k, v in t["identifiers"]]
            t["at"] = when(t["at"])
            t = Touch(**t)
        touches.append(t)
    return Prepared(
        rows=raw["rows"],
        numbers=raw["numbers"],
        touches=touches,
        events=events,
        errors=[RowError(**e) for e in raw["errors"]],
        duplicates=raw["duplicates"],
    )


def _receive(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def _send(stream: IO[bytes], frame: bytes) -> None:
    stream.write(_HEAD.pack(len(frame)))
    stream.write(frame)
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
    gc.set_threshold(*BULK_THRESHOLD)  # this process does nothing else (see rapport.kit.gcwork)
    try:
        rows = read_rows(Path(path), fmt=fmt, kind=kind, mapping=mapping or None)
        for batch in batches(rows, batch_size):
            _send(out, encode(prepare(batch, rules, now)))
    except BrokenPipeError:
        return  # the importing process stopped reading (it failed or was interrupted)
    except Exception as exc:  # handed to the importing process, which raises it
        try:
            pickle.loads(pickle.dumps(exc))  # noqa: S301 (can it travel? our own object)
            done = _Done(error=exc)
        except Exception:
            done = _Done(description=f"{type(exc).__name__}: {exc}")
        _send(out, _DONE + pickle.dumps(done))
    else:
        _send(out, _DONE + pickle.dumps(_Done()))
