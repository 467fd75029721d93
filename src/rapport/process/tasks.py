"""Background jobs of processing: trait backfills, score runs (nightly, re-enqueued), lifestyle re-apply."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from rapport.models import Workspace
from rapport.process import lifestyle, scores_service, traits_service
from rapport.runtime import Runtime
from rapport.worker import queue
from rapport.worker.runner import HandlerRegistry, JobContext, PermanentJobError

SCORES_JOB = "process.scores"
#: When the nightly run starts (UTC).
NIGHTLY_AT = time(2, 0)


def next_night(now: datetime) -> datetime:
    """Return the next nightly run time strictly after ``now``."""
    today = datetime.combine(now.date(), NIGHTLY_AT, tzinfo=now.tzinfo)
    return today if today > now else today + timedelta(days=1)


def enqueue_nightly(db: Any, *, workspace_id: int, now: datetime) -> int | None:
    """Enqueue the workspace's next nightly score run (deduped by its date)."""
    when = next_night(now)
    return queue.enqueue(
        db,
        kind=SCORES_JOB,
        workspace_id=workspace_id,
        payload={"kinds": list(scores_service.KINDS), "nightly": True},
        dedupe_key=f"{SCORES_JOB}:{workspace_id}:{when.date().isoformat()}",
        run_at=when,
        max_attempts=3,
        now=now,
    )


def run_recompute(ctx: JobContext) -> dict[str, Any]:
    """Job: recompute the named computed traits (all when none are named) for every profile."""
    if ctx.job.workspace_id is None:
        raise PermanentJobError("a recompute needs a workspace")
    names = ctx.job.payload.get("names")
    done = traits_service.recompute(ctx.runtime, ctx.job.workspace_id, names)
    return {"profiles": done}


def run_scores_job(ctx: JobContext) -> dict[str, Any]:
    """Job: run score kinds; a nightly run enqueues the next night's in the same transaction."""
    if ctx.job.workspace_id is None:
        raise PermanentJobError("a score run needs a workspace")
    now = ctx.runtime.clock.now()
    runs = scores_service.run_scores(ctx.runtime, ctx.job.workspace_id, ctx.job.payload.get("kinds"), now)
    if ctx.job.payload.get("nightly"):
        enqueue_nightly(ctx.db, workspace_id=ctx.job.workspace_id, now=now)
    return {"runs": runs}


def run_lifestyle(ctx: JobContext) -> dict[str, Any]:
    """Job: re-apply the lifestyle overlay to every profile of the workspace."""
    if ctx.job.workspace_id is None:
        raise PermanentJobError("a lifestyle job needs a workspace")
    return {"matched": lifestyle.apply_all(ctx.runtime, ctx.job.workspace_id)}


class NightlyScheduler:
    """A worker tick that makes sure every workspace has its next nightly score run queued (every 10 min)."""

    def __init__(self, runtime: Runtime, *, every: timedelta = timedelta(minutes=10)) -> None:
        self.runtime = runtime
        self.every = every
        self._last: datetime | None = None

    def tick(self) -> int:
        """Enqueue missing nightly runs; returns 0 (scheduling is not work the worker should spin on)."""
        now = self.runtime.clock.now()
        if self._last is not None and now - self._last < self.every:
            return 0
        self._last = now
        with self.runtime.sessions() as db:
            for ws in db.scalars(select(Workspace.id)):
                enqueue_nightly(db, workspace_id=ws, now=now)
            db.commit()
        return 0


def register(registry: HandlerRegistry) -> None:
    """Register the processing job handlers."""
    registry.register(traits_service.RECOMPUTE_JOB, run_recompute)
    registry.register(SCORES_JOB, run_scores_job)
    registry.register(lifestyle.APPLY_JOB, run_lifestyle)
