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

``recover`` settles what a killed worker left ``sending`` from its journal (see ``journal.py``).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import timezone as phone_timezone
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rapport.channels.base import Channel, OutboundMessage, SendResult, SendStatus
from rapport.collect import identity as ident
from rapport.consent import links as consent_links
from rapport.consent import service as consent_service
from rapport.consent.tokens import LinkTarget
from rapport.messaging import caps as caps_rules
from rapport.messaging import feedback, inbound, journal, ratelimit, tracking
from rapport.messaging import holds as holds_mod
from rapport.messaging import quiet_hours as quiet
from rapport.messaging import repository as repo
from rapport.messaging.render import RecipientFacts, RenderError, build
from rapport.models import Message, Profile, Suppression, Workspace
from rapport.personalize import TemplateEngine
from rapport.profiles import gdpr as profiles_gdpr
from rapport.runtime import Runtime
from rapport.worker.queue import backoff_delay

log = logging.getLogger("rapport.messaging")

CHANNELS_PORT = "channels"
HARD_BOUNCE_CODES = frozenset({"550", "551", "553", "554"})


def channels_of(runtime: Runtime) -> dict[str, Channel]:
    """Return the channel adapters registered on the runtime, by name."""
    found = runtime.ports.get(CHANNELS_PORT)
    if found is None:
        found = runtime.ports[CHANNELS_PORT] = {}
    return found


@dataclass
class _Ready:
    message: Message
    outbound: OutboundMessage
    caps_taken: list[tuple[str, str]] = field(default_factory=list)


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


def recipient_zones(profile: Profile, workspace: Workspace) -> list[str]:
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


class Deliverer:
    """Runs outbox rounds for one worker; register ``tick`` on the worker."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str | None = None,
        batch_size: int = 100,
        lease: timedelta = timedelta(minutes=5),
        unknown_after: timedelta = timedelta(minutes=15),
        engine: TemplateEngine | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.runtime = runtime
        self.worker_id = journal.safe_name(worker_id or f"deliver-{uuid.uuid4().hex[:12]}")
        self.batch_size = batch_size
        self.lease = lease
        self.unknown_after = unknown_after
        self.engine = engine or TemplateEngine()
        self.rng = rng or random.Random()
        self.spool = Path(runtime.settings.spool_dir)
        self._journal: journal.SendJournal | None = None
        self._last_recovery = 0.0
        self.rate_limits = ratelimit.RateLimits(runtime.settings.channel_rates)  # messaging/ratelimit.py

    @property
    def journal(self) -> journal.SendJournal:
        """This worker's send journal (opened on first use)."""
        if self._journal is None:
            self._journal = journal.SendJournal(self.spool, self.worker_id)
        return self._journal

    def close(self) -> None:
        """Close the journal (clean shutdown: nothing left to recover)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # -- the round ----------------------------------------------------------------------------------------

    def tick(self) -> int:
        """Run one round (recovering dead peers first, at most every few seconds); returns rows handled."""
        if time.monotonic() - self._last_recovery > 5:
            self._last_recovery = time.monotonic()
            self.recover()
        stats = self.run_round()
        return stats.claimed

    def drain(self, *, max_rounds: int = 10_000) -> RoundStats:
        """Run rounds until nothing is due (tests, CLI); returns the totals."""
        total = RoundStats()
        self.recover()
        for _ in range(max_rounds):
            stats = self.run_round()
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            if stats.claimed == 0:
                break
        return total

    def run_round(self) -> RoundStats:
        """Claim, check, send and settle one batch."""
        stats = RoundStats()
        now = self.runtime.clock.now()
        with self.runtime.sessions() as db:
            claimed = repo.claim(
                db, worker_id=self.worker_id, now=now, lease_until=now + self.lease, limit=self.batch_size
            )
            stats.claimed = len(claimed)
            if not claimed:
                db.commit()
                return stats
            ready = self._check_and_render(db, claimed, now, stats)
            db.commit()
        if not ready:
            return stats
        results = self._send(ready)
        with self.runtime.sessions() as db:
            self._settle(db, ready, results, stats)
            db.commit()
        self.journal.reset()
        return stats

    # -- checks -------------------------------------------------------------------------------------------

    def _check_and_render(
        self, db: Session, claimed: list[Message], now: datetime, stats: RoundStats
    ) -> list[_Ready]:
        workspaces: dict[int, Workspace] = {}
        ready: list[_Ready] = []
        available = channels_of(self.runtime)
        holds: dict[int, holds_mod.Hold] = {}
        for workspace_id in {m.workspace_id for m in claimed}:
            workspace = db.get(Workspace, workspace_id)
            assert workspace is not None
            workspaces[workspace_id] = workspace
            campaign_ids = {
                m.campaign_id for m in claimed if m.workspace_id == workspace_id and m.campaign_id
            }
            if campaign_ids:
                holds.update(holds_mod.campaign_holds(db, workspace=workspace, campaign_ids=campaign_ids))
        for message in claimed:
            workspace = workspaces[message.workspace_id]
            # paused campaigns (complaints R18, or a marketer) wait in the queue; cancelled ones are dropped
            if message.campaign_id is not None:
                hold = holds.get(message.campaign_id)
                if hold is not None and hold.cancel:
                    self._finish(db, message, repo.SKIPPED, hold.reason, now)
                    stats.skipped += 1
                    continue
                if hold is not None:
                    self._defer(db, message, now + inbound.PAUSE_RECHECK, now)
                    message.status_reason = hold.reason
                    stats.deferred += 1
                    continue
            profile = self._live_profile(db, message.profile_id)
            if profile is None:
                self._finish(db, message, repo.SKIPPED, "the profile no longer exists", now)
                stats.skipped += 1
                continue
            address = self._address(profile, message)
            if not address:
                self._finish(db, message, repo.SKIPPED, f"no {message.channel} address", now)
                stats.skipped += 1
                continue
            if self._suppressed(db, workspace.id, message.channel, address):
                self._finish(db, message, repo.SKIPPED, "address is suppressed", now)
                stats.skipped += 1
                continue
            decision = consent_service.can_send(
                db,
                workspace=workspace,
                profile_id=profile.id,
                channel=message.channel,
                topic=message.topic or None,
                marketing=message.kind == "marketing",
                now=now,
                is_confirmation=message.kind == "confirmation",
            )
            # inbound.py: the answer to STOP/START/HELP goes to someone who may just have opted out (R13)
            if not decision.allowed and not inbound.is_keyword_answer(message):
                self._finish(db, message, repo.SKIPPED, decision.reason, now)
                stats.skipped += 1
                continue
            zones = quiet.zones(recipient_zones(profile, workspace))
            if message.kind == "marketing":
                window = quiet.window_for(message.channel, workspace.settings)
                due = quiet.next_allowed(now, window, zones)
                if due > now:
                    self._defer(db, message, due, now)
                    stats.deferred += 1
                    continue
            # rate limits (messaging/ratelimit.py): over the channel's rate → back in the queue, no try spent
            wait = self.rate_limits.wait(message.channel, workspace.id, workspace.settings, now)
            if wait > 0:
                self._defer(db, message, now + timedelta(seconds=wait), now)
                message.status_reason = f"rate limit: deferred {wait:.2f}s"
                stats.deferred += 1
                continue
            taken: list[tuple[str, str]] = []
            if message.kind == "marketing":
                taken_or_none = self._take_caps(db, workspace, profile.id, message.channel, now, zones)
                if taken_or_none is None:
                    self._finish(db, message, repo.SKIPPED, "frequency cap reached", now)
                    stats.skipped += 1
                    continue
                taken = taken_or_none
            if message.channel not in available:
                self._give_back(db, workspace.id, profile.id, taken)
                self._finish(db, message, repo.DEAD, f"no {message.channel} channel is configured", now)
                stats.dead += 1
                continue
            try:
                outbound = build(
                    self.engine,
                    message,
                    RecipientFacts(
                        profile_id=profile.id,
                        address=address,
                        traits=dict(profile.traits or {}),
                        timezone=zones[0].key if zones else workspace.timezone,
                        locale=str((profile.traits or {}).get("locale") or "en_GB"),
                    ),
                    now=now,
                    links=self._links(workspace.id, profile.id, message),
                    defaults=self._defaults(workspace),
                    tracker=tracking.for_workspace(self.runtime, workspace),  # messaging/tracking.py
                )
            except RenderError as exc:
                self._give_back(db, workspace.id, profile.id, taken)
                self._finish(db, message, repo.DEAD, f"render failed: {exc}", now)
                stats.dead += 1
                continue
            message.to_address = address
            ready.append(_Ready(message=message, outbound=outbound, caps_taken=taken))
        return ready

    def _live_profile(self, db: Session, profile_id: int) -> Profile | None:
        profile = db.get(Profile, profile_id)
        hops = 0
        while profile is not None and profile.merged_into_id is not None and hops < 10:
            profile = db.get(Profile, profile.merged_into_id)
            hops += 1
        return profile

    @staticmethod
    def _address(profile: Profile, message: Message) -> str | None:
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
    def _suppressed(db: Session, workspace_id: int, channel: str, address: str) -> bool:
        kind = {"email": "email", "sms": "phone"}.get(channel)
        if kind is None:
            return False
        digest = ident.suppression_hash(workspace_id, kind, address)
        return (
            db.scalar(
                select(Suppression.id).where(
                    Suppression.workspace_id == workspace_id,
                    Suppression.kind == kind,
                    Suppression.value_hash == digest,
                )
            )
            is not None
        )

    def _take_caps(
        self,
        db: Session,
        workspace: Workspace,
        profile_id: int,
        channel: str,
        now: datetime,
        zones: list[Any],
    ) -> list[tuple[str, str]] | None:
        zone = zones[0] if zones else quiet.zones([workspace.timezone])[0]
        taken: list[tuple[str, str]] = []
        for cap in caps_rules.applicable(caps_rules.caps_from_settings(workspace.settings), channel):
            period = caps_rules.period_key(cap.per, now, zone)
            if not repo.take_cap(
                db,
                workspace_id=workspace.id,
                profile_id=profile_id,
                channel=cap.channel,
                period=period,
                limit=cap.limit,
            ):
                self._give_back(db, workspace.id, profile_id, taken)
                return None
            taken.append((cap.channel, period))
        return taken

    @staticmethod
    def _give_back(db: Session, workspace_id: int, profile_id: int, taken: list[tuple[str, str]]) -> None:
        for channel, period in taken:
            repo.give_back_cap(
                db, workspace_id=workspace_id, profile_id=profile_id, channel=channel, period=period
            )

    def _links(self, workspace_id: int, profile_id: int, message: Message) -> dict[str, str]:
        url = consent_links.unsubscribe_url(
            self.runtime,
            LinkTarget(workspace_id, profile_id, message.channel, message.topic, message.message_id),
        )
        return {"unsubscribe": url, "preferences": url}

    def _defaults(self, workspace: Workspace) -> dict[str, str]:
        email = (workspace.settings or {}).get("email", {})
        return {
            "from_address": str(email.get("from_address") or self.runtime.settings.email_from),
            "from_name": str(email.get("from_name") or workspace.name),
            "sms_status_callback": inbound.status_callback_url(
                self.runtime.settings.base_url, workspace.slug
            ),
        }

    def _finish(self, db: Session, message: Message, status: str, reason: str, now: datetime) -> None:
        message.status = status
        message.status_reason = reason[:500]
        message.claimed_by = None
        message.claimed_until = None
        message.updated_at = now
        if status == repo.SKIPPED:
            feedback.record(db, message, "skipped", at=now, now=now, extra={"reason": reason[:200]})
        elif status == repo.DEAD:
            message.last_error = reason

    def _defer(self, db: Session, message: Message, due: datetime, now: datetime) -> None:
        message.status = repo.QUEUED
        message.run_at = due
        message.attempts = max(0, message.attempts - 1)  # waiting for daytime is not a try
        message.status_reason = f"quiet hours: deferred to {due.isoformat(timespec='minutes')}"
        message.claimed_by = None
        message.claimed_until = None
        message.updated_at = now

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
        now = self.runtime.clock.now()
        for item in ready:
            message = db.merge(item.message, load=True)
            if message.status != repo.SENDING or message.claimed_by != self.worker_id:
                continue  # settled elsewhere (recovered as unknown after a long stall)
            result = results.get(message.message_id) or SendResult(
                message.message_id, SendStatus.FAILED_TRANSIENT, error="no result from channel"
            )
            self.apply_result(db, message, result, now=now, stats=stats, caps_taken=item.caps_taken)

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
            message.status_reason = "the provider may have it (acknowledgement lost); not resent"
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
        with self.runtime.sessions() as db:
            stale = db.execute(
                update(Message)
                .where(Message.status == repo.SENDING, Message.claimed_until < now - self.unknown_after)
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
