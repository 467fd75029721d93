"""The deliverer: claims due outbox rows, checks them, renders, hands them to channels, settles results.

One round (a worker tick):

1. **claim** a small batch (``SKIP LOCKED`` on PostgreSQL) and, in the same transaction, run the checks
   that protect the customer — profile alive, address present, not suppressed (R17/R18), consent (R12),
   quiet hours (defer, R14), frequency caps taken atomically (R9) — and render (R22). Rows that fail a
   check are settled right there (skipped/deferred/dead); the rest are ``sending``. Commit.
2. **send** each channel's share through its adapter, which writes the send journal at the point of no
   return (R6, R8).
3. **settle** the results in one transaction (sent, retry with backoff, dead letter, unknown), with
   feedback events on the profile; then clear the journal.

``tick`` and ``drain`` pipeline rounds: while one batch is sending (a thread; only for channels that
declare ``sends_in_background``, i.e. that need no database), the next is claimed, checked and
rendered; the sent batch is then settled and the next one starts sending. The journal only ever holds
the batch in flight. A tick settles everything it claimed before it returns.

``recover`` settles what a killed worker left ``sending`` from its journal (see ``journal.py``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezone
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from rapport.catalog import service as products_service
from rapport.channels.base import Channel, OutboundMessage, SendResult, SendStatus
from rapport.collect import identity as ident
from rapport.consent import links as consent_links
from rapport.consent import service as consent_service
from rapport.consent.tokens import LinkTarget
from rapport.content import rendering as content_rendering
from rapport.content import service as content_service
from rapport.content.stores import nearest_store, placed_stores
from rapport.db.base import column_length
from rapport.db.planner import one_of
from rapport.errors import NotFound
from rapport.kit.gcwork import bulk_gc
from rapport.messaging import caps as caps_rules
from rapport.messaging import feedback, inbound, journal, ratelimit, tracking
from rapport.messaging import holds as holds_mod
from rapport.messaging import quiet_hours as quiet
from rapport.messaging import repository as repo
from rapport.messaging.render import (
    USES_FACTS,
    USES_STORE,
    RecipientFacts,
    RenderError,
    liquid_uses,
    own_liquid,
    sender_defaults,
)
from rapport.messaging.render_pool import Outcome, RenderJob, RenderPool, backlog_jobs, render_one
from rapport.models import Message, Profile, Workspace
from rapport.personalize import RenderFailed, TemplateEngine
from rapport.profiles import gdpr as profiles_gdpr
from rapport.runtime import Runtime
from rapport.worker.queue import backoff_delay
from rapport.worker.runner import notify_work

log = logging.getLogger("rapport.messaging")

CHANNELS_PORT = "channels"
HARD_BOUNCE_CODES = frozenset({"550", "551", "553", "554"})
UNKNOWN_REASON = "the provider may have it (acknowledgement lost); not resent"

#: When a render that stalled on a busy worker is tried again (it counts as an attempt).
STALL_RETRY = timedelta(seconds=30)


def channels_of(runtime: Runtime) -> dict[str, Channel]:
    """Return the channel adapters registered on the runtime, by name."""
    found = runtime.ports.get(CHANNELS_PORT)
    if found is None:
        found = runtime.ports[CHANNELS_PORT] = {}
    return found


SUPPRESSION_KINDS = {"email": "email", "sms": "phone"}


#: The longest address ``messages.to_address`` records (its column's length).
TO_ADDRESS_MAX = column_length(Message.__table__.c.to_address)


@dataclass
class _BatchFacts:
    """What a batch's own-Liquid messages read beyond the profile row (``Deliverer._render_facts``)."""

    people: dict[int, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)
    products: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _Ready:
    message: repo.ClaimedMessage
    outbound: OutboundMessage
    caps_taken: list[tuple[str, str]] = field(default_factory=list)


#: A batch whose sending is over and its results, waiting to be settled.
_Sent = tuple[list[_Ready], Mapping[str, SendResult]]


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A claimed row that passed every check up to the frequency caps."""

    message: repo.ClaimedMessage
    workspace: Workspace
    person: repo.RecipientRow
    address: str
    zones: list[ZoneInfo]


@dataclass
class _Outcomes:
    """The claim-time verdicts of one batch, written back with one statement per kind."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    contents: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[tuple[repo.ClaimedMessage, str, dict[str, Any] | None]] = field(default_factory=list)

    def finish(self, message: repo.ClaimedMessage, status: str, reason: str, now: datetime) -> None:
        """Settle a row at claim time: skipped (with its feedback event) or dead."""
        self.finished.append(
            {
                "id": message.id,
                "status": status,
                "status_reason": reason[:500],
                "last_error": reason if status == repo.DEAD else message.last_error,
                "claimed_by": None,
                "claimed_until": None,
                "updated_at": now,
            }
        )
        if status == repo.SKIPPED:
            self.feedback.append((message, "skipped", {"reason": reason[:200]}))

    def defer(
        self,
        message: repo.ClaimedMessage,
        due: datetime,
        reason: str,
        now: datetime,
        *,
        counts_as_try: bool = False,
    ) -> None:
        """Put a row back in the queue until ``due``; waiting (daytime, a paused campaign) is not a try,
        a render that stalled is."""
        self.deferred.append(
            {
                "id": message.id,
                "status": repo.QUEUED,
                "run_at": due,
                "attempts": message.attempts if counts_as_try else max(0, message.attempts - 1),
                "status_reason": reason[:500],
                "claimed_by": None,
                "claimed_until": None,
                "updated_at": now,
            }
        )

    def write(self, db: Session, now: datetime) -> None:
        """Write every verdict and the skip feedback."""
        for rows in (self.finished, self.deferred, self.contents):
            repo.update_messages(db, rows)
        feedback.record_many(db, self.feedback, at=now, now=now)


def _custom_plans(db: Session) -> None:
    """PostgreSQL: plan this transaction's statements for their parameters. Its batch queries (``IN`` lists
    of a hundred ids) run again and again, so psycopg prepares them and the server then switches to a
    generic plan, which for the consent lookup was a scan of every subscription on the channel (~20 ms a
    batch instead of ~3 at 10k customers)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _give_back_counts(counts: dict[repo.CounterKey, int], wanted: list[tuple[repo.CounterKey, int]]) -> None:
    for key, _limit in wanted:
        counts[key] -= 1


@dataclass
class RoundStats:
    """What one round did."""

    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retried: int = 0
    dead: int = 0
    unknown: int = 0


def _add(total: RoundStats, more: RoundStats) -> None:
    for name in vars(total):
        setattr(total, name, getattr(total, name) + getattr(more, name))


def recipient_zones(profile: Profile | repo.RecipientRow, workspace: Workspace) -> list[str]:
    """Return the recipient's candidate timezones: the profile's, else the phone number's, else the
    workspace's (R14; several candidates mean the strictest reading)."""
    if profile.timezone:
        return [profile.timezone]
    if profile.phone:
        try:
            number = phonenumbers.parse(profile.phone, None)
            found = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
        except phonenumbers.NumberParseException:
            found = []
        if found:
            return found
    return [workspace.timezone]


#: The claimed batch's workspaces (statements used every round are built once: building one per call cost
#: more Python than running it).
_WORKSPACES = select(Workspace).where(one_of(Workspace.id, "ids"))


class Deliverer:
    """Runs outbox rounds for one worker; register ``tick`` on the worker."""

    #: PostgreSQL: queued messages wake the lane at once, from any process (``repository.OUTBOX_CHANNEL``).
    wake_channel = repo.OUTBOX_CHANNEL

    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str | None = None,
        batch_size: int = 250,
        lease: timedelta = timedelta(minutes=5),
        unknown_after: timedelta = timedelta(minutes=15),
        engine: TemplateEngine | None = None,
        rng: random.Random | None = None,
        tick_seconds: float = 0.1,
        render_processes: int = 0,
    ) -> None:
        self.runtime = runtime
        self.worker_id = journal.safe_name(worker_id or f"deliver-{uuid.uuid4().hex[:12]}")
        self.batch_size = batch_size
        self.lease = lease
        self.unknown_after = unknown_after
        self.engine = engine or TemplateEngine()
        # render_pool.py: helper processes that render a backlog's batches off this process's interpreter lock
        self.render_pool = (
            RenderPool(render_processes, self.engine, min_jobs=backlog_jobs(batch_size))
            if render_processes > 0
            else None
        )
        self.rng = rng or random.Random()
        self.spool = Path(runtime.settings.spool_dir)
        self._journal: journal.SendJournal | None = None
        self._last_recovery = 0.0
        self.rate_limits = ratelimit.RateLimits(runtime.settings.channel_rates)  # messaging/ratelimit.py
        self._zone_cache: dict[tuple[str | None, str | None, str], list[ZoneInfo]] = {}
        self._round_cache: dict[tuple[str, int], object] = {}  # per-workspace values, fresh each round
        self._contents = repo.ContentCache()  # a campaign's rows share one parsed content document
        self.tick_seconds = tick_seconds
        self._sender: ThreadPoolExecutor | None = None
        # batches handed to the sending thread, in order, not yet settled (the journal holds their lines)
        self._inflight: list[tuple[list[_Ready], Future[dict[str, SendResult]]]] = []
        # messages another lane of this process claimed and rendered in its own transaction (``adopt``),
        # and what checking them did; guarded by their own lock, so that handing them over never waits
        # for this lane's checks
        self._adopted: list[_Ready] = []
        self._adopted_stats = RoundStats()
        self._handed = threading.Lock()
        # the claim-time checks and renders of this lane and of ``adopt`` (another lane's thread) share the
        # round caches, the rate limits and the render helpers: one at a time
        self._checking = threading.Lock()

    def on_start(self) -> None:
        """A running worker starts: start the render helpers now, in the background (render_pool.py), so
        that their start (a process importing Rapport, a second or two of CPU) never lands in the middle
        of the traffic whose first big batch would otherwise start them (B5: the first run's p99 doubled)."""
        if self.render_pool is not None:
            self.render_pool.start()

    # -- taking over what another lane of this process queued -------------------------------------------

    def watch(self, db: Session) -> None:
        """Start collecting the outbox rows ``db``'s transaction inserts (the event processor's batch)."""
        repo.watch_queued(db)

    def adopt(self, db: Session) -> Callable[[], None] | None:
        """Claim, check and render, in ``db``'s transaction (the caller's, before it commits), the rows it
        queued since :meth:`watch` that are due now; return what to call once that transaction committed,
        which hands them to this deliverer's lane to send (None when there is nothing to hand over).

        The event processor's batch does this for the messages its triggers queued: they then go to the
        channel without waiting for the deliverer's next claim, a write transaction of its own (on SQLite
        a turn at the one write lock, behind the processor's next batch). The rows are ``sending``,
        claimed by this worker, when the transaction commits, exactly as if the lane had claimed them; if
        the process dies before they are sent, recovery queues them again from the journal (which is
        opened here, so a dead worker always leaves one). Nothing of it may fail the caller's batch: the
        work runs in a savepoint, and if it fails the rows stay queued for the lane's own claim."""
        ids = repo.take_queued(db)
        if not ids:
            return None
        ids = ids[: self.batch_size]  # the rest waits for the lane's own claim
        now = self.runtime.clock.now()
        stats = RoundStats()
        try:
            with db.begin_nested():
                claimed = repo.claim(
                    db,
                    worker_id=self.worker_id,
                    now=now,
                    lease_until=now + self.lease,
                    limit=len(ids),
                    contents=self._contents,
                    ids=ids,
                )
                ready = self._checked(db, claimed, now, stats) if claimed else []
        except Exception as exc:
            log.warning("taking over queued messages failed; the deliverer claims them", exc_info=exc)
            return None
        stats.claimed = len(claimed)
        _ = self.journal  # opened now: a worker that dies before sending leaves its journal to recover

        def hand_over() -> None:
            with self._handed:
                _add(self._adopted_stats, stats)
                self._adopted.extend(ready)
            if ready:
                notify_work(self.runtime, repo.OUTBOX_CHANNEL)

        return hand_over

    def _take_adopted(self, stats: RoundStats) -> list[_Ready]:
        with self._handed:
            ready, self._adopted = self._adopted, []
            _add(stats, self._adopted_stats)
            self._adopted_stats = RoundStats()
        return ready

    def _checked(
        self, db: Session, claimed: list[repo.ClaimedMessage], now: datetime, stats: RoundStats
    ) -> list[_Ready]:
        with self._checking:
            self._round_cache.clear()
            return self._check_and_render(db, claimed, now, stats)

    @property
    def journal(self) -> journal.SendJournal:
        """This worker's send journal (opened on first use)."""
        if self._journal is None:
            self._journal = journal.SendJournal(self.spool, self.worker_id)
        return self._journal

    def on_stop(self) -> None:
        """The worker stops (its lanes are done): settle the batches in flight, and send and settle those
        handed over (``adopt``) that the lane did not take, rather than leave them ``sending`` until a
        recovery."""
        self._flush()
        stats = RoundStats()
        adopted = self._take_adopted(stats)
        if adopted:
            self._finish([(adopted, self._send(adopted))], stats)

    def close(self) -> None:
        """Finish as :meth:`on_stop` does, stop the sending thread, close the journal (clean shutdown:
        nothing left to recover)."""
        self.on_stop()
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self.render_pool is not None:
            self.render_pool.close()
            self.render_pool = None

    # -- the round ----------------------------------------------------------------------------------------

    def tick(self) -> int:
        """Run rounds for up to ``tick_seconds`` (recovering dead peers first, at most every few seconds),
        each batch sending while the next is claimed and rendered; returns rows handled. Everything the
        tick claimed is settled when it returns."""
        if time.monotonic() - self._last_recovery > 5:
            self._last_recovery = time.monotonic()
            self.recover()
        handled = 0
        deadline = time.monotonic() + self.tick_seconds
        with bulk_gc():  # kit/gcwork.py: a round allocates thousands of short-lived objects per batch
            try:
                while True:
                    stats = self._pipelined_round()
                    handled += stats.claimed
                    if stats.claimed == 0 or time.monotonic() > deadline:
                        break
            finally:
                self._flush()
        return handled

    def drain(self, *, max_rounds: int = 10_000) -> RoundStats:
        """Run rounds until nothing is due (tests, CLI), pipelined as ``tick`` does; returns the totals."""
        total = RoundStats()
        self.recover()
        with bulk_gc():
            try:
                for _ in range(max_rounds):
                    stats = self._pipelined_round()
                    _add(total, stats)
                    if stats.claimed == 0:
                        break
            finally:
                _add(total, self._flush())
        return total

    def run_round(self) -> RoundStats:
        """Claim (or take what was handed over), check, send and settle one batch, in this thread."""
        stats = self._flush()
        ready = self._take_adopted(stats) or self._claim_round(stats)
        if ready:
            self._finish([(ready, self._send(ready))], stats)
        return stats

    def _claim_round(self, stats: RoundStats, sent: Sequence[_Sent] = ()) -> list[_Ready]:
        """Claim a batch, run the checks and render it, and commit: the rows that may go are ``sending``.

        ``sent``: batches whose sending is over, settled in this same transaction; if anything fails
        before the commit, they are settled on their own before the error goes on."""
        now = self.runtime.clock.now()
        if not sent:
            with self.runtime.read_sessions() as read:
                if not repo.any_due(read, now=now):  # idle: no write transaction (SQLite's one writer lock)
                    return []
        try:
            with self.runtime.sessions() as db:
                _custom_plans(db)
                for ready_before, results in sent:
                    self._settle(db, ready_before, results, stats)
                claimed = repo.claim(
                    db,
                    worker_id=self.worker_id,
                    now=now,
                    lease_until=now + self.lease,
                    limit=self.batch_size,
                    contents=self._contents,
                )
                stats.claimed += len(claimed)
                ready = self._checked(db, claimed, now, stats) if claimed else []
                db.commit()
        except BaseException:
            if sent:
                self._finish(sent, RoundStats())
            raise
        if sent:
            self._settled()
        return ready

    def _finish(self, batches: Sequence[_Sent], stats: RoundStats) -> None:
        """Settle sent batches and commit, then clear the journal (its lines are in the database now)."""
        with self.runtime.sessions() as db:
            _custom_plans(db)
            for ready, results in batches:
                self._settle(db, ready, results, stats)
            db.commit()
        self._settled()

    def _settled(self) -> None:
        """Clear the journal once every batch it may hold lines of is settled (none is sending)."""
        if not self._inflight:
            self.journal.reset()

    def _pipelined_round(self) -> RoundStats:
        """Send what another lane handed over (``adopt``) at once; else claim and render the next batch
        while the previous one is still sending (in a thread), then settle that one and send this one the
        same way. Channels that do not declare ``sends_in_background`` (those that use the database, like
        push and in-app) are sent in this thread. Batches sent in the thread go in order; the journal is
        cleared when none of them is left unsettled."""
        stats = RoundStats()
        ready = self._take_adopted(stats)
        if not ready:
            done = self._sent_batches()
            if done:
                # the batches in flight are sent already: settle them in this claim's transaction, one
                # write transaction a round instead of two (on SQLite one wait for the write lock fewer
                # before the next batch may start sending: B5's real-time chain)
                ready = self._claim_round(stats, done)
            else:
                ready = self._claim_round(stats)
                _add(stats, self._flush())
        if not ready:
            return stats
        available = channels_of(self.runtime)
        if all(getattr(available.get(r.message.channel), "sends_in_background", False) for r in ready):
            if self._sender is None:
                self._sender = ThreadPoolExecutor(1, thread_name_prefix=f"send-{self.worker_id}")
            self._inflight.append((ready, self._sender.submit(self._send, ready)))
        else:
            self._finish([(ready, self._send(ready))], stats)
        return stats

    def _sent_batches(self) -> list[_Sent]:
        """Take the batches at the head of the sending thread's queue whose sending is over."""
        done: list[_Sent] = []
        while self._inflight and self._inflight[0][1].done():
            ready, future = self._inflight.pop(0)
            done.append((ready, future.result()))
        return done

    def _flush(self) -> RoundStats:
        """Wait for the batches in flight, if any, and settle them; returns what settling them did."""
        stats = RoundStats()
        if not self._inflight:
            return stats
        batches = [(ready, future.result()) for ready, future in self._inflight]
        self._inflight = []
        self._finish(batches, stats)
        return stats

    # -- checks -------------------------------------------------------------------------------------------

    def _check_and_render(
        self, db: Session, claimed: list[repo.ClaimedMessage], now: datetime, stats: RoundStats
    ) -> list[_Ready]:
        """Run the claim-time checks for the whole batch with a handful of queries, render what may go,
        and write every row's outcome back in bulk (the caller commits)."""
        out = _Outcomes()
        templates: dict[tuple[int, int], Any] = {}  # saved templates prepared once per batch (content/)
        available = channels_of(self.runtime)
        workspace_ids = sorted({m.workspace_id for m in claimed})
        workspaces = {w.id: w for w in db.scalars(_WORKSPACES, {"ids": workspace_ids})}
        holds: dict[int, holds_mod.Hold] = {}
        for workspace in workspaces.values():
            campaign_ids = {
                m.campaign_id for m in claimed if m.workspace_id == workspace.id and m.campaign_id
            }
            if campaign_ids:
                holds.update(holds_mod.campaign_holds(db, workspace=workspace, campaign_ids=campaign_ids))
        people = repo.live_recipients(db, {m.profile_id for m in claimed})
        addresses: dict[int, str | None] = {}
        hashes: dict[int, tuple[int, str, str]] = {}
        for message in claimed:
            person = people.get(message.profile_id)
            address = addresses[message.id] = self._address(person, message) if person else None
            kind = SUPPRESSION_KINDS.get(message.channel)
            if address and kind:
                digest = ident.suppression_hash(message.workspace_id, kind, address)
                hashes[message.id] = (message.workspace_id, kind, digest)
        blocked = repo.suppressed(db, set(hashes.values()))
        decisions = self._consent(db, claimed, workspaces, people, now)

        candidates: list[_Candidate] = []
        for message in claimed:
            workspace = workspaces[message.workspace_id]
            # paused campaigns (complaints R18, or a marketer) wait in the queue; cancelled ones are dropped
            hold = holds.get(message.campaign_id) if message.campaign_id is not None else None
            if hold is not None and hold.cancel:
                out.finish(message, repo.SKIPPED, hold.reason, now)
                stats.skipped += 1
                continue
            if hold is not None:
                out.defer(message, now + inbound.PAUSE_RECHECK, hold.reason, now)
                stats.deferred += 1
                continue
            person = people.get(message.profile_id)
            if person is None:
                out.finish(message, repo.SKIPPED, "the profile no longer exists", now)
                stats.skipped += 1
                continue
            address = addresses[message.id]
            if not address:
                out.finish(message, repo.SKIPPED, f"no {message.channel} address", now)
                stats.skipped += 1
                continue
            if hashes.get(message.id) in blocked:
                out.finish(message, repo.SKIPPED, "address is suppressed", now)
                stats.skipped += 1
                continue
            decision = decisions[message.id]
            # inbound.py: the answer to STOP/START/HELP goes to someone who may just have opted out (R13)
            if not decision.allowed and not inbound.is_keyword_answer(message):
                out.finish(message, repo.SKIPPED, decision.reason, now)
                stats.skipped += 1
                continue
            zones = self._zones(person, workspace)
            if message.kind == "marketing":
                due = quiet.next_allowed(now, self._window(workspace, message.channel), zones)
                if due > now:
                    out.defer(
                        message, due, f"quiet hours: deferred to {due.isoformat(timespec='minutes')}", now
                    )
                    stats.deferred += 1
                    continue
            # rate limits (messaging/ratelimit.py): over the channel's rate → back in the queue, no try spent
            wait = self.rate_limits.wait(message.channel, workspace.id, workspace.settings, now)
            if wait > 0:
                out.defer(message, now + timedelta(seconds=wait), f"rate limit: deferred {wait:.2f}s", now)
                stats.deferred += 1
                continue
            candidates.append(_Candidate(message, workspace, person, address, zones))

        facts = self._render_facts(db, candidates, now)
        # frequency caps (R9): lock every counter the batch needs, decide in priority order, write once
        needs = {c.message.id: self._cap_keys(c, now) for c in candidates if c.message.kind == "marketing"}
        counts = repo.lock_counters(db, {key for keys in needs.values() for key, _limit in keys})
        before = dict(counts)
        # take the caps in priority order and render what may go (render_pool.py: in helper processes when
        # configured and the batch is big enough); a message that cannot be rendered gives its counts back,
        # and the messages the caps held back are then looked at again, as if it had never taken them
        ready: list[_Ready] = []
        waiting = list(candidates)
        while waiting:
            capped: list[_Candidate] = []
            jobs: list[tuple[_Candidate, list[tuple[repo.CounterKey, int]], RenderJob]] = []
            failed: list[tuple[_Candidate, list[tuple[repo.CounterKey, int]], RenderError]] = []
            for c in waiting:
                wanted = needs.get(c.message.id, [])
                if any(limit <= 0 or counts[key] >= limit for key, limit in wanted):
                    capped.append(c)
                    continue
                for key, _limit in wanted:
                    counts[key] += 1
                if c.message.channel not in available:
                    _give_back_counts(counts, wanted)
                    out.finish(c.message, repo.DEAD, f"no {c.message.channel} channel is configured", now)
                    stats.dead += 1
                    continue
                try:
                    jobs.append((c, wanted, self._job(db, c, now, templates, facts)))
                except RenderError as exc:
                    failed.append((c, wanted, exc))
            outcomes = self._render([job for _c, _w, job in jobs], now)
            for (c, wanted, _job), outcome in zip(jobs, outcomes, strict=True):
                if isinstance(outcome, RenderError):
                    failed.append((c, wanted, outcome))
                    continue
                message = c.message
                # the address as recorded (written when the row is settled, see _settle): a webhook's URL may
                # be longer than the column (the request goes to the whole URL); the record keeps its first
                # characters, explicitly, never failing
                message.to_address = c.address[:TO_ADDRESS_MAX]
                if message.channel == "inapp":  # the inbox shows what was rendered (messaging/inapp.py)
                    out.contents.append({"id": message.id, "content": message.content})
                ready.append(_Ready(message, outcome, [(key[2], key[3]) for key, _limit in wanted]))
            for c, wanted, error in failed:
                _give_back_counts(counts, wanted)
                self._render_failed(out, c.message, error, now, stats)
            # counts given back may let a held-back message through; else the caps' verdict stands
            waiting = capped if any(wanted for _c, wanted, _e in failed) else []
            if not waiting:
                for c in capped:
                    out.finish(c.message, repo.SKIPPED, "frequency cap reached", now)
                    stats.skipped += 1
        repo.set_counters(db, {key: n for key, n in counts.items() if n != before[key]})
        out.write(db, now)
        return ready

    def _render_facts(self, db: Session, candidates: list[_Candidate], now: datetime) -> _BatchFacts:
        """The computed traits, scores and segment names of the recipients whose message's own Liquid reads
        them, and the products it names by id (a saved template reads its own, content/): a few queries
        per workspace and batch, none when no message asks."""
        wanted: dict[int, set[int]] = defaultdict(set)
        named: dict[int, set[str]] = defaultdict(set)
        for c in candidates:
            sources = own_liquid(c.message.content or {})
            if any(USES_FACTS.search(source) for source in sources):
                wanted[c.workspace.id].add(c.person.id)
            if product_ids := products_service.referenced_product_ids(sources):
                named[c.workspace.id] |= product_ids
        facts = _BatchFacts()
        for workspace_id, profile_ids in wanted.items():
            facts.people.update(content_rendering.recipient_facts(db, workspace_id, sorted(profile_ids), now))
        for workspace_id, product_ids in named.items():
            facts.products[workspace_id] = products_service.products_by_id(
                db, workspace_id=workspace_id, product_ids=product_ids
            )
        return facts

    def _job(
        self,
        db: Session,
        c: _Candidate,
        now: datetime,
        templates: dict[tuple[int, int], Any],
        facts: _BatchFacts,
    ) -> RenderJob:
        """What rendering one message needs (links, a saved template's parts rendered here: they read the
        database); raises RenderError when a saved template cannot be rendered."""
        workspace, person = c.workspace, c.person
        links = self._links(workspace.id, person.id, c.message)
        prerendered = self._saved_template(db, c.message, person.id, links, now, templates)
        computed, segments = facts.people.get(person.id, ({}, []))
        traits = person.traits
        store = (
            nearest_store(self._stores(workspace), traits)
            if prerendered is None and liquid_uses(c.message.content or {}, USES_STORE)
            else None
        )
        facts_of = RecipientFacts(
            profile_id=person.id,
            address=c.address,
            traits=traits,
            timezone=c.zones[0].key if c.zones else workspace.timezone,
            locale=str(traits.get("locale") or "en_GB"),
            currency=str(traits.get("currency") or "GBP"),
            computed=computed,
            segments=tuple(segments),
            store=store,
            catalog=facts.products.get(workspace.id) if prerendered is None else None,
        )
        tracker = self._tracker(workspace)  # messaging/tracking.py
        return RenderJob(c.message, facts_of, links, self._defaults(workspace), tracker, prerendered)

    @staticmethod
    def _render_failed(
        out: _Outcomes, message: repo.ClaimedMessage, error: RenderError, now: datetime, stats: RoundStats
    ) -> None:
        if error.transient and message.attempts < message.max_attempts:
            # stalled on a busy worker, not a bad template: again a little later, as a try
            out.defer(message, now + STALL_RETRY, f"render stalled: {error}", now, counts_as_try=True)
            stats.retried += 1
            return
        out.finish(message, repo.DEAD, f"render failed: {error}", now)
        stats.dead += 1

    def _render(self, jobs: list[RenderJob], now: datetime) -> list[Outcome]:
        """Every job's payload or RenderError, in order (render_pool.py decides what its helpers take)."""
        if self.render_pool is None:
            return [render_one(self.engine, job, now) for job in jobs]
        return self.render_pool.render(jobs, now)

    def _consent(
        self,
        db: Session,
        claimed: list[repo.ClaimedMessage],
        workspaces: dict[int, Workspace],
        people: dict[int, repo.RecipientRow],
        now: datetime,
    ) -> dict[int, consent_service.Decision]:
        decisions: dict[int, consent_service.Decision] = {}
        for workspace in workspaces.values():
            mine = [m for m in claimed if m.workspace_id == workspace.id and m.profile_id in people]
            asks = [
                consent_service.SendAsk(
                    profile_id=people[m.profile_id].id,
                    channel=m.channel,
                    topic=m.topic or "",
                    marketing=m.kind == "marketing",
                    is_confirmation=m.kind == "confirmation",
                )
                for m in mine
            ]
            answers = consent_service.can_send_many(db, workspace=workspace, asks=asks, now=now)
            decisions.update(zip((m.id for m in mine), answers, strict=True))
        return decisions

    def _zones(self, person: repo.RecipientRow, workspace: Workspace) -> list[ZoneInfo]:
        key = (person.timezone, None if person.timezone else person.phone, workspace.timezone)
        found = self._zone_cache.get(key)
        if found is None:
            found = quiet.zones(recipient_zones(person, workspace))
            if len(self._zone_cache) > 10_000:
                self._zone_cache.clear()
            self._zone_cache[key] = found
        return found

    def _window(self, workspace: Workspace, channel: str) -> quiet.Window | None:
        return quiet.window_for(channel, workspace.settings)

    def _cap_keys(self, c: _Candidate, now: datetime) -> list[tuple[repo.CounterKey, int]]:
        workspace = c.workspace
        zone = c.zones[0] if c.zones else quiet.zones([workspace.timezone])[0]
        return [
            ((workspace.id, c.person.id, cap.channel, caps_rules.period_key(cap.per, now, zone)), cap.limit)
            for cap in caps_rules.applicable(
                caps_rules.caps_from_settings(workspace.settings), c.message.channel
            )
        ]

    @staticmethod
    def _address(profile: Profile | repo.RecipientRow, message: repo.ClaimedMessage | Message) -> str | None:
        if message.channel == "email":
            return profile.email
        if message.channel == "sms":
            return profile.phone
        if message.channel == "webhook":
            return str((message.content or {}).get("url") or "") or None
        if message.channel in ("push", "inapp"):  # push_delivery.py / inapp.py look the person up by id
            return str(profile.id)
        return None

    @staticmethod
    def _give_back(db: Session, workspace_id: int, profile_id: int, taken: list[tuple[str, str]]) -> None:
        for channel, period in taken:
            repo.give_back_cap(
                db, workspace_id=workspace_id, profile_id=profile_id, channel=channel, period=period
            )

    def _saved_template(
        self,
        db: Session,
        message: repo.ClaimedMessage,
        profile_id: int,
        links: dict[str, str],
        now: datetime,
        cache: dict[tuple[int, int], Any],
    ) -> dict[str, str] | None:
        """The parts of a message made from a saved template (rule blocks, snippets), rendered for this
        recipient by content/; None for a message that carries its own Liquid."""
        content = message.content or {}
        if content.get("template_id") is None:
            return None
        try:
            rendered = content_service.render_outbox_content(
                db,
                workspace_id=message.workspace_id,
                content=content,
                profile_id=profile_id,
                now=now,
                links=links,
                engine=self.engine,
                cache=cache,
            )
        except RenderFailed as exc:
            raise RenderError.of("template", exc) from exc
        except NotFound as exc:
            raise RenderError(str(exc)) from exc
        return dict(rendered.parts)

    def _links(self, workspace_id: int, profile_id: int, message: repo.ClaimedMessage) -> dict[str, str]:
        url = consent_links.unsubscribe_url(
            self.runtime,
            LinkTarget(workspace_id, profile_id, message.channel, message.topic, message.message_id),
        )
        return {"unsubscribe": url, "preferences": url}

    def _tracker(self, workspace: Workspace) -> tracking.Tracker | None:
        key = ("tracker", workspace.id)
        if key not in self._round_cache:
            self._round_cache[key] = tracking.for_workspace(self.runtime, workspace)
        return cast("tracking.Tracker | None", self._round_cache[key])

    def _stores(self, workspace: Workspace) -> list[tuple[tuple[float, float], Mapping[str, Any]]]:
        key = ("stores", workspace.id)
        if key not in self._round_cache:
            self._round_cache[key] = placed_stores(workspace.settings)
        return cast("list[tuple[tuple[float, float], Mapping[str, Any]]]", self._round_cache[key])

    def _defaults(self, workspace: Workspace) -> dict[str, str]:
        key = ("defaults", workspace.id)
        if key not in self._round_cache:
            self._round_cache[key] = sender_defaults(self.runtime.settings, workspace)
        return cast("dict[str, str]", self._round_cache[key])

    # -- send and settle ----------------------------------------------------------------------------------

    def _send(self, ready: list[_Ready]) -> dict[str, SendResult]:
        by_channel: dict[str, list[_Ready]] = defaultdict(list)
        for item in ready:
            by_channel[item.message.channel].append(item)
        results: dict[str, SendResult] = {}
        available = channels_of(self.runtime)
        for name, items in by_channel.items():
            channel = available[name]
            batch = [item.outbound for item in items]
            try:
                answers = send_with_journal(channel, batch, self.journal)
            except Exception as exc:  # an adapter bug must not lose the batch: retry it later
                log.exception("channel %s failed", name)
                answers = [
                    SendResult(m.message_id, SendStatus.FAILED_TRANSIENT, error=f"adapter error: {exc}")
                    for m in batch
                ]
            for answer in answers:
                results[answer.message_id] = answer
        return results

    def _settle(
        self, db: Session, ready: list[_Ready], results: Mapping[str, SendResult], stats: RoundStats
    ) -> None:
        """Record a batch's results: sent and unknown rows with one statement each and the sent feedback in
        bulk; failures (rare) one by one through ``apply_result`` (retry, dead letter, hard bounce)."""
        now = self.runtime.clock.now()
        ours = repo.still_claimed(db, worker_id=self.worker_id, ids=[item.message.id for item in ready])
        sent: list[dict[str, Any]] = []
        unknown: list[dict[str, Any]] = []
        events: list[tuple[repo.ClaimedMessage, str, dict[str, Any] | None]] = []
        for item in ready:
            message = item.message
            if message.id not in ours:
                continue  # settled elsewhere (recovered as unknown after a long stall)
            result = results.get(message.message_id) or SendResult(
                message.message_id, SendStatus.FAILED_TRANSIENT, error="no result from channel"
            )
            # the address goes in with the verdict, not at claim time: PostgreSQL checks a row's foreign
            # keys again on any update in the transaction that wrote its current version (the claim's), so
            # an UPDATE of to_address there cost a batch ~13 ms, half of it those checks (B8)
            settled = {
                "id": message.id,
                "to_address": message.to_address,
                "claimed_by": None,
                "claimed_until": None,
                "updated_at": now,
            }
            if result.status is SendStatus.SENT:
                sent.append(
                    settled
                    | {
                        "status": repo.SENT,
                        "sent_at": now,
                        "provider_id": result.provider_id,
                        "status_reason": None,
                    }
                )
                events.append((message, "sent", None))
                stats.sent += 1
            elif result.status is SendStatus.UNKNOWN:
                unknown.append(
                    settled
                    | {
                        "status": repo.UNKNOWN,
                        "status_reason": UNKNOWN_REASON,
                        "last_error": result.error,
                    }
                )
                stats.unknown += 1
            else:
                row = db.get(Message, message.id)
                assert row is not None
                row.to_address = message.to_address  # a hard bounce suppresses it (apply_result)
                self.apply_result(db, row, result, now=now, stats=stats, caps_taken=item.caps_taken)
        repo.update_messages(db, sent)
        repo.update_messages(db, unknown)
        feedback.record_many(db, events, at=now, now=now)

    def apply_result(
        self,
        db: Session,
        message: Message,
        result: SendResult,
        *,
        now: datetime,
        stats: RoundStats,
        caps_taken: list[tuple[str, str]] | None = None,
    ) -> None:
        """Record one channel result on its outbox row (also used by recovery)."""
        message.claimed_by = None
        message.claimed_until = None
        message.updated_at = now
        if result.status is SendStatus.SENT:
            message.status = repo.SENT
            message.sent_at = now
            message.provider_id = result.provider_id
            message.status_reason = None
            feedback.record(db, message, "sent", at=now, now=now)
            stats.sent += 1
            return
        if result.status is SendStatus.UNKNOWN:
            message.status = repo.UNKNOWN
            message.status_reason = UNKNOWN_REASON
            message.last_error = result.error
            stats.unknown += 1
            return
        self._give_back(db, message.workspace_id, message.profile_id, caps_taken or [])
        message.last_error = (result.error or "")[:4000]
        if result.status is SendStatus.FAILED_TRANSIENT and message.attempts < message.max_attempts:
            delay = result.retry_after or backoff_delay(message.attempts, base=30.0, rng=self.rng)
            message.status = repo.QUEUED
            message.run_at = now + timedelta(seconds=delay)
            message.status_reason = f"retrying after: {(result.error or '')[:200]}"
            stats.retried += 1
            return
        message.status = repo.DEAD
        message.status_reason = (result.error or "failed")[:500]
        stats.dead += 1
        if (
            message.channel == "email"
            and result.error_code in HARD_BOUNCE_CODES
            and "RCPT" in (result.error or "")
        ):
            feedback.record(db, message, "bounced", at=now, now=now, extra={"bounce": "hard"})
            if message.to_address:
                profiles_gdpr.suppress(
                    db,
                    workspace_id=message.workspace_id,
                    kind="email",
                    value=message.to_address,
                    reason="hard_bounce",
                )

    # -- recovery -----------------------------------------------------------------------------------------

    def _recorded_addresses(self, db: Session, rows: Sequence[Message]) -> None:
        """Fill in the address of recovered rows (recorded when a batch settles, which its dead worker did
        not get to): the recipient's address now, as a retry would use."""
        missing = [m for m in rows if not m.to_address]
        if not missing:
            return
        people = repo.live_recipients(db, {m.profile_id for m in missing})
        for message in missing:
            person = people.get(message.profile_id)
            address = self._address(person, message) if person else None
            if address:
                message.to_address = address[:TO_ADDRESS_MAX]

    def recover(self) -> int:
        """Settle rows left ``sending`` by dead workers: from their journals on this host, else as unknown
        once the lease is long gone. Returns how many rows were settled."""
        settled = 0
        now = self.runtime.clock.now()
        for path, fd in journal.orphaned(self.spool):
            state = journal.read(path)
            owner = path.name.removesuffix(".journal")
            with self.runtime.sessions() as db:
                rows = db.scalars(
                    select(Message).where(Message.status == repo.SENDING, Message.claimed_by == owner)
                ).all()
                stats = RoundStats()
                self._recorded_addresses(db, rows)
                for message in rows:
                    outcome = state.outcome(message.message_id)
                    if outcome == "sent":
                        self.apply_result(
                            db,
                            message,
                            SendResult(
                                message.message_id,
                                SendStatus.SENT,
                                provider_id=state.accepted[message.message_id],
                            ),
                            now=now,
                            stats=stats,
                        )
                    elif outcome == "unknown":
                        self.apply_result(
                            db,
                            message,
                            SendResult(
                                message.message_id,
                                SendStatus.UNKNOWN,
                                error="worker died after the point of no return",
                            ),
                            now=now,
                            stats=stats,
                        )
                    else:
                        message.status = repo.QUEUED
                        message.run_at = now
                        message.claimed_by = None
                        message.claimed_until = None
                        message.status_reason = "worker died before sending; queued again"
                    settled += 1
                db.commit()
            journal.release(path, fd)
        lost = now - self.unknown_after
        with self.runtime.read_sessions() as read:  # most of the time there is none: no write transaction
            if not repo.any_sending_before(read, lost):
                return settled
        with self.runtime.sessions() as db:
            stale = db.execute(
                update(Message)
                .where(Message.status == repo.SENDING, Message.claimed_until < lost)
                .values(
                    status=repo.UNKNOWN,
                    status_reason="worker vanished while sending; not resent",
                    claimed_by=None,
                    claimed_until=None,
                    updated_at=now,
                )
            )
            settled += int(getattr(stale, "rowcount", 0) or 0)
            db.commit()
        return settled


def send_with_journal(
    channel: Channel, batch: list[OutboundMessage], send_journal: journal.SendJournal
) -> list[SendResult]:
    """Send through ``channel``; adapters that know the point of no return write the journal themselves,
    others get it written around the whole call (coarser, still never resent blindly)."""
    if getattr(channel, "supports_journal", False):
        return list(channel.send(batch, journal=send_journal))  # type: ignore[call-arg]
    for message in batch:
        send_journal.committing(message.message_id)
    answers = list(channel.send(batch))
    for answer in answers:
        if answer.status is SendStatus.SENT:
            send_journal.accepted(answer.message_id, answer.provider_id)
    return answers
