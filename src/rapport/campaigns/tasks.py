"""The campaign worker tick: start scheduled broadcasts, queue their audiences chunk by chunk, decide
A/B/n winners when test phases end, and scan date-relative triggers. Each step is its own short
transaction, so a crash resumes where it stopped and SQLite's write lock is never held for long."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rapport.campaigns import measure, sending, triggers
from rapport.campaigns import repository as repo
from rapport.campaigns.service import ACTIVE, SCHEDULED, SENDING, TESTING, segments_building, start_sending
from rapport.collect.processor import ProcessingHooks
from rapport.models import Campaign
from rapport.runtime import Runtime
from rapport.segments.realtime import bus_for

log = logging.getLogger("rapport.campaigns.tasks")


def register(hooks: ProcessingHooks, runtime: Runtime) -> None:
    """Wire campaigns into processing: event triggers, conversions, segment entry/exit triggers."""
    hooks.after_apply.append(triggers.on_events)
    hooks.after_apply.append(measure.on_events)
    bus_for(runtime).subscribe(triggers.on_membership)


class CampaignTick:
    """Worker tick for campaigns (see the module docstring)."""

    #: What it does comes due with the clock or a marketer's action: other lanes' work does not wake it,
    #: and idle it looks again after a second (a busy one, e.g. queueing a broadcast, goes on at once).
    wakeable = False
    idle_poll_seconds = 1.0

    def __init__(
        self,
        runtime: Runtime,
        *,
        chunk: int = sending.CHUNK,
        date_interval: timedelta = timedelta(minutes=15),
    ) -> None:
        self.runtime = runtime
        self.chunk = chunk
        self.date_interval = date_interval
        self._date_scanned: dict[int, datetime] = {}

    def __call__(self) -> int:
        """Do what is due now; returns how many units of work were done (0: idle)."""
        now = self.runtime.clock.now()
        with self.runtime.read_sessions() as db:
            due = [(c.id, c.workspace_id, c.status, c.kind) for c in repo.campaigns_in(
                db, statuses=[SCHEDULED, SENDING, TESTING, ACTIVE]
            ) if self._may_have_work(c, now)]  # fmt: skip
        work = 0
        for campaign_id, workspace_id, status, kind in due:
            try:
                work += self._step(campaign_id, workspace_id, status, kind, now)
            except Exception:  # one campaign failing must not stop the others
                log.exception("campaign %s step failed", campaign_id)
        return work

    def _step(self, campaign_id: int, workspace_id: int, status: str, kind: str, now: datetime) -> int:
        with self.runtime.sessions() as db:
            campaign = repo.lock_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)
            if campaign is None or campaign.status != status:
                return 0
            work = 0
            if status == SCHEDULED and campaign.send_at is not None and campaign.send_at <= now:
                if segments_building(db, campaign=campaign):
                    return 0  # its audience is not complete yet: freeze it on a later tick
                start_sending(db, campaign=campaign, now=now)
                work = 1
            elif status == SENDING:
                work = sending.send_chunk(db, campaign=campaign, now=now, limit=self.chunk)
                work = work or int(campaign.status != SENDING)
            elif measure.test_phase_over(campaign, now) and self._has_experiment(campaign, status):
                work = int(measure.decide_winner(db, campaign=campaign, now=now) is not None)
            elif status == ACTIVE and kind == "date_relative":
                last = self._date_scanned.get(campaign_id)
                if last is None or now - last >= self.date_interval:
                    work = triggers.scan_date_campaign(db, campaign=campaign, now=now)
                    self._date_scanned[campaign_id] = now
            db.commit()
            return work

    def _may_have_work(self, campaign: Campaign, now: datetime) -> bool:
        """Whether ``_step`` could do anything for this (read, unlocked) campaign: most polls find nothing
        due, and each step takes the write lock (SQLite: the whole store's), so idle ones are skipped here;
        ``_step`` decides again under the lock."""
        status = campaign.status
        if status == SENDING:
            return True
        if status == SCHEDULED:
            return campaign.send_at is not None and campaign.send_at <= now
        if measure.test_phase_over(campaign, now) and self._has_experiment(campaign, status):
            return True
        if status == ACTIVE and campaign.kind == "date_relative":
            last = self._date_scanned.get(campaign.id)
            return last is None or now - last >= self.date_interval
        return False

    @staticmethod
    def _has_experiment(campaign: Campaign, status: str) -> bool:
        if status == TESTING:
            return True
        experiment = campaign.experiment or {}
        return status == ACTIVE and bool(experiment) and campaign.winner_variant is None
