"""Group commit: many concurrent requests, one transaction, each request answered only once it is durable.

Example::

    committer = Committer(write=write_works, size=lambda w: w.size)
    await committer.start()                 # create_app's lifespan does this
    ids = await committer.submit(work)      # returns once ``work`` is committed (R2)
    await committer.stop()                  # drains what is queued, then stops

Requests put their unit of work in a queue and await a future. One asyncio task takes everything queued,
hands it to ``write`` on a dedicated thread (one transaction), and resolves each future with its result or
error. There is no timer: while one transaction is in flight the next group gathers, so a request waits at
most for the write in flight plus its own (bounded by ``max_group`` rows), which keeps the added latency far
under 50 ms while a single transaction carries hundreds of events under load. When more than
``max_pending`` rows wait, ``submit`` refuses at once with ``Overloaded`` (429 + Retry-After) instead of
queueing without bound. ``on_idle`` runs on the writing thread after ``idle_after`` seconds without
work and at stop (the ingest writer gives its held connection back to the pool there). If a group's transaction fails and ``isolate(error)`` says the failure may come
from one unit's data, each unit is retried in its own transaction so one bad request cannot fail the others.
``on_written`` runs on the writing thread after every group that committed something (e.g.
``lambda: notify_work(runtime, PENDING_CHANNEL)``: the in-process worker's processor starts at once, not at
its next poll).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rapport.errors import RateLimited

log = logging.getLogger("rapport.collect.committer")

W = TypeVar("W")
R = TypeVar("R")


class Overloaded(RateLimited):
    """The ingest queue is full; the client should retry after a moment."""

    code = "ingest_overloaded"


@dataclass
class CommitterStats:
    """Counters for measurement: transactions, rows, the largest group and the slowest write."""

    commits: int = 0
    rows: int = 0
    units: int = 0
    largest_group: int = 0
    slowest_write_ms: float = 0.0
    refused: int = 0
    write_ms: list[float] = field(default_factory=list)

    def record(self, units: int, rows: int, ms: float) -> None:
        """Account for one transaction."""
        self.commits += 1
        self.units += units
        self.rows += rows
        self.largest_group = max(self.largest_group, units)
        self.slowest_write_ms = max(self.slowest_write_ms, ms)
        if len(self.write_ms) < 100_000:
            self.write_ms.append(ms)


@dataclass
class _Item(Generic[W, R]):
    work: W
    future: asyncio.Future[R]
    size: int


class Committer(Generic[W, R]):
    """Collects units of work from concurrent requests and writes them in one transaction at a time."""

    def __init__(
        self,
        *,
        write: Callable[[list[W]], list[R]],
        size: Callable[[W], int] = lambda _w: 1,
        isolate: Callable[[Exception], bool] = lambda _e: True,
        max_pending: int = 20_000,
        max_group: int = 2_000,
        retry_after: int = 1,
        name: str = "rapport-committer",
        on_idle: Callable[[], None] | None = None,
        idle_after: float = 1.0,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self._write = write
        self._size = size
        self._isolate = isolate
        self.max_pending = max_pending
        self.max_group = max_group
        self.retry_after = retry_after
        self.name = name
        self._on_idle = on_idle
        self.idle_after = idle_after
        self._on_written = on_written
        self._dirty = False  # written since on_idle last ran
        self.stats = CommitterStats()
        self._queue: deque[_Item[W, R]] = deque()
        self._pending = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    @property
    def pending(self) -> int:
        """Return the rows queued or being written."""
        return self._pending

    async def start(self) -> None:
        """Start the committer task on the running loop (idempotent)."""
        self._ensure_running(asyncio.get_running_loop())

    def _ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._stopping = False
        self._loop = loop
        self._wakeup = asyncio.Event()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._task = loop.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Write what is queued, then stop the task and its thread."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None and self._loop is asyncio.get_running_loop():
            await self._task
        self._task = None
        if self._executor is not None:
            if self._on_idle is not None:
                self._executor.submit(self._idle)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, work: W) -> R:
        """Queue ``work`` and return its result once committed; raises Overloaded when the queue is full."""
        size = max(1, self._size(work))
        if self._pending and self._pending + size > self.max_pending:
            self.stats.refused += 1
            raise Overloaded(
                "too many events are waiting to be stored; retry shortly",
                retry_after=self.retry_after,
                details={"pending": self._pending, "limit": self.max_pending},
            )
        loop = asyncio.get_running_loop()
        self._ensure_running(loop)
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append(_Item(work, future, size))
        self._pending += size
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _take_group(self) -> list[_Item[W, R]]:
        group: list[_Item[W, R]] = []
        rows = 0
        while self._queue and (not group or rows + self._queue[0].size <= self.max_group):
            item = self._queue.popleft()
            group.append(item)
            rows += item.size
        return group

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wakeup.clear()
                if self._dirty and self._on_idle is not None:
                    # Wake up after idle_after without work to run on_idle (e.g. release a connection).
                    timer = loop.call_later(self.idle_after, self._wakeup.set)
                    await self._wakeup.wait()
                    timer.cancel()
                    if not self._queue and not self._stopping:
                        self._dirty = False
                        await loop.run_in_executor(self._executor, self._idle)
                    continue
                await self._wakeup.wait()
                continue
            self._dirty = True
            group = self._take_group()
            rows = sum(item.size for item in group)
            try:
                results = await loop.run_in_executor(
                    self._executor, self._write_group, [item.work for item in group]
                )
            except BaseException as exc:  # the task itself is being cancelled
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(
                            exc if isinstance(exc, Exception) else RuntimeError("stopped")
                        )
                raise
            finally:
                self._pending -= rows
            for item, result in zip(group, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, _Failed):
                    item.future.set_exception(result.error)
                else:
                    item.future.set_result(result)

    def _idle(self) -> None:
        assert self._on_idle is not None
        try:
            self._on_idle()
        except Exception as exc:  # housekeeping must never stop the committer
            log.warning("%s: on_idle failed: %s", self.name, type(exc).__name__)

    def _write_group(self, works: list[W]) -> list[R | _Failed]:
        started = time.perf_counter()
        try:
            results: list[R | _Failed] = list(self._write(works))
        except Exception as exc:
            if len(works) == 1 or not self._isolate(exc):
                log.warning("group commit of %d units failed: %s", len(works), type(exc).__name__)
                return [_Failed(exc)] * len(works)
            results = []
            for work in works:
                try:
                    results.extend(self._write([work]))
                except Exception as one:
                    results.append(_Failed(one))
        self.stats.record(
            len(works), sum(self._size(w) for w in works), (time.perf_counter() - started) * 1000
        )
        if self._on_written is not None and not all(isinstance(r, _Failed) for r in results):
            try:
                self._on_written()
            except Exception as exc:  # a wake-up must never fail a committed group
                log.warning("%s: on_written failed: %s", self.name, type(exc).__name__)
        return results


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception
