"""Propensity models per workspace: features as of past days, a time holdout, a stored model, batch scoring.

Workspace setting ``propensity``: a list of ``{"name", "event", "days"}`` (``event`` may be ``$purchase``);
default ``[{"name": "purchase_30d", "event": "$purchase", "days": 30}]``. Reference days are
``today − N·k`` (k = 1…6 for training, k = 0 to score); as of a day a profile is described by the whole days
before it (:mod:`rapport.process.scores.features`: purchases, spend, days since the last purchase, tenure,
events in the 30 days before, target events and days since the last one) and labelled 1 when the target
event followed within N days. The inputs come from the purchases the scores service already read plus one
grouped activity pass (and one pass over the target events when the target is not a purchase). Training
uses a seeded sample of at most ``TRAIN_ROWS_PER_DAY`` profiles per reference day; the pure
``propensity.train`` holds out the newest days. Every profile with events is scored in batches. A model that
is not ``usable`` is stored with its reasons but its scores are not written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.models import ScoreRun
from rapport.process import score_repository
from rapport.process.computed import PURCHASE
from rapport.process.score_patches import KEEP, SET, Column
from rapport.process.scores.features import FEATURES, DailyEvents, FeatureRows, positions
from rapport.runtime import Runtime

if TYPE_CHECKING:
    from rapport.process.scores_service import Inputs, KindResult, Stopwatch

REFERENCE_DATES = 6
#: At most this many sampled profiles per reference day train a model.
TRAIN_ROWS_PER_DAY = 40_000
#: Profiles scored per predict call.
PREDICT_BATCH = 100_000
SAMPLE_SEED = 0
DEFAULT_MODELS: tuple[dict[str, Any], ...] = ({"name": "purchase_30d", "event": PURCHASE, "days": 30},)


def models_of(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the workspace's propensity model specs (validated, defaults filled)."""
    raw = settings.get("propensity")
    items = raw if isinstance(raw, list) and raw else list(DEFAULT_MODELS)
    out = []
    for item in items:
        if (
            isinstance(item, Mapping)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("event"), str)
        ):
            days = int(item.get("days") or 30)
            out.append({"name": item["name"], "event": item["event"], "days": max(1, min(days, 365))})
    return out


def run_params(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return what a model's run records about how it was built."""
    return {
        "event": spec["event"],
        "days": int(spec["days"]),
        "features": list(FEATURES),
        "reference_dates": REFERENCE_DATES,
        "train_rows_per_day": TRAIN_ROWS_PER_DAY,
    }


def _midnight(day: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)


@dataclass(frozen=True)
class ModelReads:
    """What one model reads besides the shared inputs: activity windows and, when the target is not a
    purchase, the target events by day (``None``: the target is the purchases the service already read)."""

    activity: score_repository.Activity
    targets: DailyEvents | None
    seconds: float
    cpu: float


def reference_days(spec: Mapping[str, Any], now: datetime) -> list[int]:
    """Return the model's reference days, today first: ``today − N·k`` for k = 0…``REFERENCE_DATES``."""
    today = score_repository.day_number(now)
    return [today - int(spec["days"]) * k for k in range(REFERENCE_DATES + 1)]


def read_model_inputs(
    runtime: Runtime, workspace_id: int, spec: Mapping[str, Any], now: datetime
) -> ModelReads:
    """Read a model's own inputs in a read session of its own (the service runs this on a second thread,
    overlapping the shared reads and the other scores)."""
    started, cpu = time.perf_counter(), time.thread_time()
    windows = [(_midnight(d - 30), _midnight(d)) for d in reference_days(spec, now)]
    with runtime.read_sessions() as db:
        act = score_repository.activity(db, workspace_id, before=now, windows=windows)
        targets = (
            None
            if spec["event"] == PURCHASE
            else score_repository.daily_counts(db, workspace_id, [str(spec["event"])], before=now)
        )
    return ModelReads(act, targets, time.perf_counter() - started, time.thread_time() - cpu)


def score_model(
    spec: Mapping[str, Any],
    inputs: Inputs,
    reads: ModelReads,
    now: datetime,
    watch: Stopwatch,
    result: KindResult,
) -> None:
    """Train and validate one model and, when usable, score every profile with events into ``result``."""
    from rapport.process.scores import propensity

    horizon = int(spec["days"])
    days = reference_days(spec, now)
    today = days[0]
    act = reads.activity
    targets = inputs.purchases if reads.targets is None else reads.targets
    rows = FeatureRows(act.profile_ids, act.first_day, inputs.purchases, targets)
    with watch.stage("propensity_train"):
        rng = np.random.default_rng(SAMPLE_SEED)
        blocks, labels, dates = [], [], []
        for k in range(1, REFERENCE_DATES + 1):
            active, matrix = rows.as_of(days[k], act.window_counts[:, k])
            chosen = np.flatnonzero(active)
            if chosen.size > TRAIN_ROWS_PER_DAY:
                chosen = np.sort(rng.choice(chosen, TRAIN_ROWS_PER_DAY, replace=False))
            blocks.append(matrix[chosen])
            labels.append(rows.labels(days[k], horizon=horizon)[chosen])
            dates.append(np.full(chosen.size, np.datetime64(days[k], "D")))
        model = propensity.train(
            np.vstack(blocks),
            np.concatenate(labels),
            FEATURES,
            reference_dates=np.concatenate(dates),
            label_window=np.timedelta64(horizon, "D"),
        )
    result.metrics = {**model.summary(), "profiles_with_events": int(act.profile_ids.size)}
    result.usable = model.usable
    result.model = model.to_bytes()
    if not model.usable or act.profile_ids.size == 0:
        return
    with watch.stage("propensity_score"):
        _, now_matrix = rows.as_of(today, act.window_counts[:, 0])
        probabilities = np.concatenate(
            [
                model.predict(now_matrix[i : i + PREDICT_BATCH])
                for i in range(0, now_matrix.shape[0], PREDICT_BATCH)
            ]
        )
        pop = inputs.population.ids
        pos, known = positions(pop, act.profile_ids)
        values = np.zeros(pop.size)
        values[pos[known]] = probabilities[known]
        state = np.full(pop.size, KEEP, dtype=np.int8)
        state[pos[known]] = SET
    result.columns = [Column.numbers(f"propensity_{spec['name']}", values, digits=4, state=state)]
    result.profiles = int(known.sum())


def latest_model(db: Session, *, workspace_id: int, name: str) -> ScoreRun | None:
    """Return the newest finished run of the named model."""
    return db.scalar(
        select(ScoreRun)
        .where(
            ScoreRun.workspace_id == workspace_id,
            ScoreRun.kind == "propensity",
            ScoreRun.name == name,
            ScoreRun.status == "done",
        )
        .order_by(ScoreRun.created_at.desc(), ScoreRun.id.desc())
        .limit(1)
    )
