"""Rendering beside the deliverer: helper processes that build channel payloads off its interpreter lock.

A deliverer is one Python process: claiming, checks and settling (its main thread) and the SMTP
conversation (its sending thread) share one interpreter lock, and rendering (Liquid, HTML to text, link
tracking) was the biggest share of that lock's time (B8 measured ~0.17 ms a message of ~0.5). With
``Settings.render_processes`` the deliverer hands a batch's renders to that many helper processes and
waits with the lock released, so its sending thread keeps the wire busy meanwhile, and the renders run on
another core.

What runs in a helper is :func:`render.build` exactly as the deliverer runs it, with the same inputs
(claimed row, recipient facts, links, sender defaults, tracker, parts of a saved template already rendered
by the deliverer, which reads the database) and an engine made with the same limits (R22: time, loop
and output caps apply in the helper as they do inline). Each job comes back in order as the payload or its
``RenderError`` (message and whether it is transient), which the deliverer then records exactly as an
inline failure. In-app messages keep rendering inline: their build writes the rendered parts onto the row.

Helpers only take a batch the deliverer claimed nearly full (``backlog_jobs``: 80% of its claim size,
never fewer than ``POOL_MIN``): a deliverer working through a backlog wants throughput, and a helper on
another core gives it. A smaller batch is the real-time path (a triggered message or a few dozen) and
renders inline: on a machine whose cores are busy with the API, the event processor and the database, the
trip to a helper and back (pickling, two processes to wake) cost more than the render it moved. B5 on
PostgreSQL (three processes, 1k messages/s, each round claiming what arrived since the last) measured
its p99 from event to message at 190-470 ms per run with those batches in the helper and 76-144 ms with
them inline; B8, a backlog of full claims, kept its throughput.

Helpers are started with ``spawn`` (never ``fork``: the deliverer has threads), in the background, when a
running worker starts (``Deliverer.on_start``: ``rapport worker``, the in-process worker of ``rapport
serve``), or else (``drain``, the CLI, tests) by the first batch big enough to go to them: any batch while
they warm up (imports, locales) renders inline. When a helper dies (killed, out of memory) the batch renders
inline and the pool starts again: nothing was sent from it, so nothing is lost or doubled.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime

from rapport.channels.base import OutboundMessage
from rapport.messaging.render import RecipientFacts, RenderError, build
from rapport.messaging.repository import ClaimedMessage
from rapport.messaging.tracking import Tracker
from rapport.personalize import TemplateEngine
from rapport.personalize.limits import RenderLimits

log = logging.getLogger("rapport.messaging")

#: Fewer renders than this in a batch are done inline: the trip to a helper and back costs ~1 ms.
POOL_MIN = 32
#: The share of a full claim a batch must reach to go to the helpers (see the module's docstring).
BACKLOG_SHARE = 0.8
#: Helpers lost (or failing to start) more often than this in one deliverer: it renders inline for good.
MAX_RESTARTS = 20
#: How often a helper checks that its deliverer still runs.
PARENT_CHECK_SECONDS = 1.0
#: Channels whose build has no side effect on the row (in-app writes its rendered parts onto it).
POOLED_CHANNELS = frozenset({"email", "sms", "webhook", "push"})


def backlog_jobs(batch_size: int) -> int:
    """The fewest pooled renders a batch of a deliverer claiming ``batch_size`` rows at a time must hold to
    go to the helpers: a nearly full claim (a backlog), and never fewer than ``POOL_MIN``."""
    return max(POOL_MIN, int(batch_size * BACKLOG_SHARE))


def resolve_processes(setting: int) -> int:
    """The number of helper processes for ``Settings.render_processes``: itself when 0 or more, else one
    when the machine has two cores or more (a helper on a single core only adds switches)."""
    if setting >= 0:
        return setting
    return 1 if (os.cpu_count() or 1) >= 2 else 0


@dataclass(frozen=True, slots=True)
class RenderJob:
    """One message to build, with everything :func:`render.build` takes besides the engine."""

    message: ClaimedMessage
    recipient: RecipientFacts
    links: dict[str, str]
    defaults: dict[str, str]
    tracker: Tracker | None
    prerendered: Mapping[str, str] | None = None


Outcome = OutboundMessage | RenderError


def render_one(engine: TemplateEngine, job: RenderJob, now: datetime) -> Outcome:
    """Build one job's payload, or return why it cannot be built."""
    try:
        return build(
            engine,
            job.message,
            job.recipient,
            now=now,
            links=job.links,
            defaults=job.defaults,
            tracker=job.tracker,
            prerendered=job.prerendered,
        )
    except RenderError as exc:
        return exc


@dataclass(frozen=True, slots=True)
class _EngineOptions:
    limits: RenderLimits
    snippets: dict[str, str] = field(default_factory=dict)
    compiled: bool = True


# -- inside a helper process ---------------------------------------------------------------------------

_helper_engine: TemplateEngine | None = None


def _start_helper(options: _EngineOptions, parent: int) -> None:
    global _helper_engine
    # ``parent`` is the deliverer's pid as it started the pool: a deliverer that dies while its helper is
    # still starting (imports take a moment) is noticed too; os.getppid() here would already be its adopter
    threading.Thread(target=_follow_parent, args=(parent,), name="render-parent", daemon=True).start()
    _helper_engine = TemplateEngine(
        limits=options.limits,
        snippets=options.snippets,
        compiled=options.compiled,
    )


def _follow_parent(parent: int) -> None:
    """Exit when the deliverer is gone (killed with -9 it cannot stop its helpers, and a helper waiting
    for work would never notice: it holds its own end of the work queue's pipe)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _ping() -> int:
    return os.getpid()


def _render_chunk(jobs: Sequence[RenderJob], now: datetime) -> list[OutboundMessage | tuple[str, bool]]:
    """Helper side: each job's payload, or (reason, transient) for one that cannot be built (an exception
    with keyword state does not survive pickling as it is)."""
    assert _helper_engine is not None
    out: list[OutboundMessage | tuple[str, bool]] = []
    for job in jobs:
        done = render_one(_helper_engine, job, now)
        out.append((str(done), done.transient) if isinstance(done, RenderError) else done)
    return out


# -- in the deliverer ----------------------------------------------------------------------------------


class RenderPool:
    """``processes`` helper processes rendering for one deliverer (see the module's docstring).

    Nothing starts until :meth:`start` (a running worker's deliverer, at its start), a batch big enough to
    use them, or :meth:`wait_ready`. Any batch while they warm up renders inline, so no batch ever waits for
    a helper to start."""

    def __init__(self, processes: int, engine: TemplateEngine, *, min_jobs: int = POOL_MIN) -> None:
        self.processes = processes
        self.engine = engine
        self.min_jobs = min_jobs  # fewer pooled renders than this in a batch: inline
        self._options = _EngineOptions(
            limits=engine.limits, snippets=dict(engine.snippets), compiled=engine.compiled
        )
        self._executor: ProcessPoolExecutor | None = None
        self._warming: list[Future[int]] = []
        self.rebuilt = 0  # times a lost helper made the pool start again
        self.pooled = 0  # jobs the helpers rendered

    @property
    def started(self) -> bool:
        """Whether the helpers were started (they may still be warming up)."""
        return self._executor is not None

    def start(self) -> None:
        """Start the helpers (in the background) unless they run or gave up."""
        if self._executor is not None or self.rebuilt > MAX_RESTARTS:
            return
        self._executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_helper,
            initargs=(self._options, os.getpid()),
        )
        self._warming = [self._executor.submit(_ping) for _ in range(self.processes)]

    def wait_ready(self, timeout: float = 60.0) -> list[int]:
        """Start the helpers if needed and wait for the warm-up: one answer per helper started (a fast
        helper may answer for a slower one); returns the process ids that answered."""
        self.start()
        return [future.result(timeout=timeout) for future in self._warming]

    def _ready(self) -> bool:
        if self._executor is None:
            self.start()
            return False
        if not all(future.done() for future in self._warming):
            return False
        if any(future.exception() is not None for future in self._warming):  # a helper could not start
            self._restart("a render helper did not start")
            return False
        return True

    def render(self, jobs: Sequence[RenderJob], now: datetime) -> list[Outcome]:
        """Every job's outcome, in order: the ``POOLED_CHANNELS`` jobs in the helpers when there are at
        least ``min_jobs`` of them and the helpers are warm, everything else inline."""
        pooled = [job for job in jobs if job.message.channel in POOLED_CHANNELS]
        helped = self._in_helpers(pooled, now) if len(pooled) >= self.min_jobs and self._ready() else None
        if helped is None:
            return [render_one(self.engine, job, now) for job in jobs]
        done = iter(helped)
        return [
            next(done) if job.message.channel in POOLED_CHANNELS else render_one(self.engine, job, now)
            for job in jobs
        ]

    def _in_helpers(self, jobs: Sequence[RenderJob], now: datetime) -> list[Outcome] | None:
        """The jobs' outcomes from the helpers, or None when they failed (the caller renders inline)."""
        assert self._executor is not None
        size = -(-len(jobs) // self.processes)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        try:
            futures = [self._executor.submit(_render_chunk, chunk, now) for chunk in chunks]
            answers = [item for future in futures for item in future.result()]
        except BrokenProcessPool as exc:  # a helper died: nothing of this batch was sent
            self._restart(f"render helper lost ({exc})")
            return None
        except Exception:  # e.g. a value that cannot travel to a helper: the batch still renders
            log.exception("render helpers failed; rendering this batch inline")
            return None
        self.pooled += len(jobs)
        return [RenderError(a[0], transient=a[1]) if isinstance(a, tuple) else a for a in answers]

    def _restart(self, why: str) -> None:
        self.rebuilt += 1
        if self.rebuilt > MAX_RESTARTS:
            log.error("%s; rendering inline from now on (%d restarts)", why, MAX_RESTARTS)
        else:
            log.warning("%s; rendering this batch inline and starting the helpers again", why)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.start()

    def close(self) -> None:
        """Stop the helpers."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
