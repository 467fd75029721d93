"""Segments on scores follow a score run at once: the run enqueues ``score_keys.SCORED_JOB`` and this job
refreshes every segment that names a score (and the segments naming those), recording entries and exits
as the real-time path does. Without it such segments would wait for the worker's full refresh (15 min):
a score run changes scores in bulk, not through the per-profile events the real-time hook follows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rapport.models import Segment
from rapport.process import score_keys
from rapport.segments.codec import from_json
from rapport.segments.dependencies import dependencies
from rapport.segments.realtime import RefreshTick
from rapport.worker.runner import HandlerRegistry, JobContext, PermanentJobError


class _AfterScores(RefreshTick):
    """A refresh of the segments that read scores (their dependants follow, as in ``RefreshTick``)."""

    def due(self, segment: Segment, now: datetime) -> bool:
        """Tell whether ``segment`` names a score."""
        return any(score_keys.is_score(name) for name in dependencies(from_json(segment.ast)).fields)


def run_after_scores(ctx: JobContext) -> dict[str, Any]:
    """Job: refresh the workspace's segments on scores; returns how many members entered or left."""
    if ctx.job.workspace_id is None:
        raise PermanentJobError("a segment refresh needs a workspace")
    return {"changed": _AfterScores(ctx.runtime).refresh_workspace(ctx.job.workspace_id)}


def register_jobs(registry: HandlerRegistry) -> None:
    """Register the after-scores refresh."""
    registry.register(score_keys.SCORED_JOB, run_after_scores)
