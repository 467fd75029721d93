"""The worker: claims jobs, runs the registered handler, commits its writes with the job's completion.

Example::

    registry = HandlerRegistry()
    registry.register("demo.say", lambda ctx: {"said": ctx.job.payload["text"]})
    worker = Worker(runtime, registry)
    worker.run_once()          # or worker.start_thread() / worker.run_forever(stop)

``run_once``/``drain`` (tests, ``rapport worker --once``) run the jobs and then every tick in turn.
``run_forever`` runs them in **lanes**: the jobs and each tick loop in their own thread, so one that waits
(the Deliverer on its SMTP replies, a long import job) never holds up another (the event processor); a lane
that did some work wakes the other ticks' lanes at once (new outbox rows, new events) instead of leaving
them to their next poll (the jobs lane keeps to its poll: ticks create no jobs), and
``notify_work(runtime[, channel])`` wakes them (or a channel's) from outside (ingest wakes the processor's
after it commits events). On PostgreSQL a tick may name a ``wake_channel``: a listener thread ``LISTEN``s
on it and wakes the tick's lane on every notification, so work committed by another thread or process
(ingest sends ``NOTIFY`` with its events) starts at once instead of at the lane's next poll. Before the
lanes start, ``run_forever`` calls each tick's ``on_start`` if it has one (the deliverer starts its render
helpers then, not in the middle of the traffic), and ``on_stop`` once they are done (the deliverer sends
and settles what it still holds).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.orm import Session

from rapport.kit.requestctx import reset_request_id, set_request_id
from rapport.models import Job
from rapport.runtime import Runtime
from rapport.worker import queue

log = logging.getLogger("rapport.worker")
WAKE_PORT = "worker.wake"
#: Seconds the listener waits for notifications before it looks at the stop flag again.
LISTEN_WAIT = 0.5


def notify_work(runtime: Runtime, channel: str | None = None) -> None:
    """Wake the runtime's running in-process worker lanes now (no-op without one): new work was committed.

    With ``channel`` only the lanes whose tick names it as ``wake_channel`` (as a PostgreSQL notification on
    it does): ingest wakes the event processor, not every lane a hundred times a second."""
    wake = runtime.ports.get(WAKE_PORT)
    if wake is not None:
        wake(channel)


class PermanentJobError(Exception):
    """Raised by a handler when trying again cannot help: the job is dead-lettered at once."""


@dataclass
class JobContext:
    """What a handler gets: the job, a session in the transaction that will complete it, the runtime."""

    job: Job
    db: Session
    runtime: Runtime


Handler = Callable[[JobContext], "dict[str, Any] | None"]

#: Work run on every poll besides jobs (e.g. the event processor). A tick opens and commits its own
#: transaction(s) and returns how much it did (0: idle); one tick failing does not stop the others.
Tick = Callable[[], int]


@dataclass
class HandlerRegistry:
    """Maps job kinds to handlers."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(self, kind: str, handler: Handler) -> None:
        """Register ``handler`` for jobs of ``kind``."""
        self.handlers[kind] = handler

    def kinds(self) -> list[str]:
        """Return the registered kinds."""
        return sorted(self.handlers)


class Worker:
    """Runs jobs from the queue; several may run against PostgreSQL, one claims at a time on SQLite."""

    def __init__(
        self,
        runtime: Runtime,
        registry: HandlerRegistry,
        *,
        worker_id: str | None = None,
        batch_size: int | None = None,
        lease: timedelta = timedelta(minutes=5),
        rng: random.Random | None = None,
        jobs: bool = True,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        #: Whether this worker claims jobs (``rapport worker --role`` without ``jobs``: ticks only).
        self.jobs = jobs
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.batch_size = batch_size or runtime.settings.worker_batch_size
        self.lease = lease
        self.rng = rng or random.Random()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ticks: list[Tick] = []
        self._wakers: list[threading.Event] = []
        self._woken: list[threading.Event] = []  # the lanes ``notify_work`` wakes (see ``_wakeable``)
        self._after_work: list[threading.Event] = []  # the lanes another lane's work wakes
        self._channels: dict[str, list[threading.Event]] = {}  # the lanes of each ``wake_channel``

    def add_tick(self, tick: Tick) -> None:
        """Run ``tick`` on every poll, after the jobs."""
        self.ticks.append(tick)

    def run_ticks(self) -> int:
        """Run every tick once; returns the work they reported."""
        done = 0
        for tick in self.ticks:
            try:
                done += tick()
            except Exception:
                log.exception("worker tick failed")
        return done

    def run_once(self) -> int:
        """Claim one batch of jobs and run it, then the ticks; returns the jobs taken plus the ticks' work."""
        return self.run_jobs() + self.run_ticks()

    def run_jobs(self) -> int:
        """Claim one batch of jobs and run it; returns the jobs taken (none by a worker without jobs)."""
        if not self.jobs:
            return 0
        now = self.runtime.clock.now()
        kinds = self.registry.kinds()
        # most polls find nothing: look first in a read transaction (SQLite's write lock is the store's)
        with self.runtime.read_sessions() as db:
            if not queue.due_exists(db, now=now, kinds=kinds):
                return 0
        with self.runtime.sessions() as db:
            jobs = queue.claim(
                db,
                worker_id=self.worker_id,
                now=now,
                limit=self.batch_size,
                lease=self.lease,
                kinds=kinds,
            )
            db.commit()
        for job in jobs:
            self._run(job)
        return len(jobs)

    def drain(self, *, max_rounds: int = 1000) -> int:
        """Run batches until nothing is due; returns the total jobs run (tests and CLI)."""
        total = 0
        for _ in range(max_rounds):
            taken = self.run_once()
            total += taken
            if taken == 0:
                break
        return total

    def _run(self, job: Job) -> None:
        handler = self.registry.handlers[job.kind]
        token = set_request_id(f"job-{job.id}")
        try:
            with self.runtime.sessions() as db:
                try:
                    result = handler(JobContext(job=job, db=db, runtime=self.runtime))
                    queue.complete(db, job, now=self.runtime.clock.now(), result=result)
                    db.commit()
                    return
                except PermanentJobError as exc:
                    db.rollback()
                    error, permanent = f"{type(exc).__name__}: {exc}", True
                except Exception as exc:
                    db.rollback()
                    error, permanent = "".join(traceback.format_exception_only(exc)).strip(), False
                    log.warning("job failed", extra={"job_id": job.id, "kind": job.kind}, exc_info=exc)
            with self.runtime.sessions() as db:
                status = queue.fail(
                    db,
                    job_id=job.id,
                    error=error,
                    now=self.runtime.clock.now(),
                    permanent=permanent,
                    rng=self.rng,
                )
                db.commit()
            log.info("job not done", extra={"job_id": job.id, "kind": job.kind, "status": status})
        finally:
            reset_request_id(token)

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Run the jobs and every tick in their own lanes (threads) until ``stop`` is set."""
        stop = stop or self._stop
        lanes: list[tuple[str, Tick]] = [("jobs", self.run_jobs)] if self.jobs else []
        lanes += [(f"tick-{i}-{_name(tick)}", tick) for i, tick in enumerate(self.ticks)]
        wakers = [threading.Event() for _ in lanes]
        self._wakers = wakers
        self._woken = [w for (_name_, work), w in zip(lanes, wakers, strict=True) if _wakeable(work)]
        # The ticks' work (events processed, messages settled) never creates jobs: jobs come from the edges
        # (API, UI, CLI) and from jobs, so the jobs lane is not woken by it. It was, by every processor
        # batch and delivery round, to find nothing (B5: a tenth of the worker's interpreter time).
        jobs_lane = wakers[0] if self.jobs else None
        self._after_work = [w for w in self._woken if w is not jobs_lane]
        self._channels = {}
        for (_, work), waker in zip(lanes, wakers, strict=True):
            if (channel := _wake_channel(work)) is not None:
                self._channels.setdefault(channel, []).append(waker)
        self.runtime.ports[WAKE_PORT] = self.wake
        self._call_ticks("on_start")  # a tick may prepare what it will need, before any work
        threads = [
            threading.Thread(
                target=self._lane, args=(work, waker, stop), name=f"rapport-worker-{name}", daemon=True
            )
            for (name, work), waker in zip(lanes, wakers, strict=True)
        ]
        if self._channels and self.runtime.engine.dialect.name == "postgresql":
            threads.append(
                threading.Thread(
                    target=self._listen,
                    args=(self._channels, stop),
                    name="rapport-worker-listen",
                    daemon=True,
                )
            )
        # the first lane (the jobs lane, or the first tick's in a worker without jobs) runs in this thread
        others = threads[1:] if lanes else threads
        for thread in others:
            thread.start()
        try:
            if lanes:
                self._lane(lanes[0][1], wakers[0], stop)
            else:
                stop.wait()
        finally:
            stop.set()
            for waker in wakers:
                waker.set()
            for thread in others:
                thread.join()
            self._call_ticks("on_stop")  # and finish what it holds in memory once its lanes are done
            if self.runtime.ports.get(WAKE_PORT) == self.wake:
                del self.runtime.ports[WAKE_PORT]

    def _call_ticks(self, hook: str) -> None:
        """Call ``hook`` (``on_start``, ``on_stop``) on each tick's owner that has it; a failure is logged
        and the others still run (e.g. no render helper could start: the deliverer runs without it)."""
        for tick in self.ticks:
            method = getattr(_owner(tick), hook, None)
            if callable(method):
                try:
                    method()
                except Exception:
                    log.exception("worker tick failed", extra={"hook": hook})

    def _listen(self, channels: dict[str, list[threading.Event]], stop: threading.Event) -> None:
        """LISTEN on the lanes' wake channels (PostgreSQL) and wake a lane on each notification of its own;
        reconnects after a failure (the lanes keep polling meanwhile)."""
        dsn = self.runtime.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for channel in channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    for lanes in channels.values():
                        for waker in lanes:  # anything committed before LISTEN took effect is looked at now
                            waker.set()
                    while not stop.is_set():
                        for note in conn.notifies(timeout=LISTEN_WAIT):
                            for waker in channels.get(note.channel, ()):
                                waker.set()
            except Exception as exc:
                log.warning("worker listener failed; lanes poll until it reconnects: %s", type(exc).__name__)
                stop.wait(1.0)

    def wake(self, channel: str | None = None) -> None:
        """Wake the lanes now (they run their work at once instead of at their next poll); with ``channel``,
        only the lanes of the ticks whose ``wake_channel`` it is."""
        for waker in self._woken if channel is None else self._channels.get(channel, ()):
            waker.set()

    def _lane(self, work: Tick, waker: threading.Event, stop: threading.Event) -> None:
        """Loop one lane: run, and when it did nothing sleep a poll interval or until woken."""
        poll = max(self.runtime.settings.worker_poll_seconds, _idle_poll(work))
        while not stop.is_set():
            waker.clear()  # before the work: a wake-up during it makes the lane go round again at once
            try:
                done = work()
            except Exception:
                log.exception("worker lane failed")
                done = 0
            if done:
                for other in self._after_work:
                    if other is not waker:
                        other.set()
            else:
                waker.wait(poll)

    def start_thread(self) -> None:
        """Run the worker in daemon threads of this process (``rapport serve`` on the embedded store)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="rapport-worker", daemon=True)
        self._thread.start()

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Ask the in-process worker to stop and wait for it."""
        self._stop.set()
        for waker in self._wakers:
            waker.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _owner(tick: Tick) -> object:
    """The object behind a tick: the instance of a bound method, else the callable itself."""
    return getattr(tick, "__self__", tick)


def _name(tick: Tick) -> str:
    """A short name for a tick's lane."""
    owner = _owner(tick)
    return type(owner).__name__ if owner is not tick else getattr(tick, "__name__", type(tick).__name__)


def _wakeable(tick: Tick) -> bool:
    """Whether other lanes' work should wake this tick's lane; a tick whose work comes due with time alone
    (refreshes, schedules) says ``wakeable = False`` and keeps to its poll."""
    return bool(getattr(_owner(tick), "wakeable", True))


def _wake_channel(tick: Tick) -> str | None:
    """The PostgreSQL notification channel whose messages wake this tick's lane (``wake_channel``), if any."""
    channel = getattr(_owner(tick), "wake_channel", None)
    return channel if isinstance(channel, str) and channel else None


def _idle_poll(tick: Tick) -> float:
    """The least time an idle lane of this tick sleeps: ``idle_poll_seconds`` of a tick whose work comes
    due with the clock (checking a minute-long schedule every 10 ms only burns the CPU the API shares)."""
    return float(getattr(_owner(tick), "idle_poll_seconds", 0.0))
