"""Propensity models per workspace: features as of past reference dates, a time holdout, stored models.

Workspace setting ``propensity``: a list of ``{"name", "event", "days"}`` (``event`` may be ``$purchase``);
default ``[{"name": "purchase_30d", "event": "$purchase", "days": 30}]``. For each model, rows are built as
of reference dates ``now − N·(k+1)`` days (k = 0…5), one row per profile active before that date, from
one SQL aggregation per date: purchases, spend, days since the last purchase, tenure, events in the 30
days before, target events before and days since the last one (the stored traits and scores, recomputed as
of the date). The label is 1 when the target event followed within N days. The pure ``propensity.train``
holds out the newest dates; a model that is not ``usable`` is stored with its reasons but its scores are
not written (``propensity_<name>`` keeps its previous value, or stays absent).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, case, func, select, type_coerce
from sqlalchemy.orm import Session

from rapport.db.base import UTCDateTime
from rapport.models import Event, ScoreRun
from rapport.process.computed import PURCHASE, PurchaseSettings
from rapport.process.computed_sql import number_at
from rapport.runtime import Runtime

FEATURES: tuple[str, ...] = (
    "orders",
    "spend",
    "days_since_purchase",
    "tenure_days",
    "events_30d",
    "target_events",
    "days_since_target",
)
REFERENCE_DATES = 6
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


def _ts(value: datetime) -> Any:
    return bindparam(None, value, type_=UTCDateTime())


def features_at(
    db: Session, workspace_id: int, purchase: PurchaseSettings, targets: list[str], at: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Return (profile ids, feature matrix) as of ``at`` from one grouped SQL pass over earlier events."""
    is_purchase = Event.event.in_(list(purchase.events))
    is_target = Event.event.in_(targets)
    value = func.coalesce(number_at(purchase.value_property), 0.0)
    stmt = (
        select(
            Event.profile_id,
            func.count(case((is_purchase, 1))),
            func.coalesce(func.sum(case((is_purchase, value))), 0.0),
            type_coerce(func.max(case((is_purchase, Event.timestamp))), UTCDateTime()),
            type_coerce(func.min(Event.timestamp), UTCDateTime()),
            func.count(case((Event.timestamp >= _ts(at - timedelta(days=30)), 1))),
            func.count(case((is_target, 1))),
            type_coerce(func.max(case((is_target, Event.timestamp))), UTCDateTime()),
        )
        .where(Event.workspace_id == workspace_id, Event.profile_id.is_not(None), Event.timestamp < _ts(at))
        .group_by(Event.profile_id)
        .order_by(Event.profile_id)
    )
    rows = db.execute(stmt).all()

    def days(when: datetime | None) -> float:
        return float("nan") if when is None else (at - when) / timedelta(days=1)

    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.asarray(
        [[r[1], float(r[2] or 0.0), days(r[3]), days(r[4]), r[5], r[6], days(r[7])] for r in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(FEATURES))
    return ids, matrix


def labels_between(
    db: Session, workspace_id: int, targets: list[str], start: datetime, end: datetime
) -> set[int]:
    """Return the profiles with a target event in [start, end)."""
    return set(
        db.scalars(
            select(Event.profile_id)
            .where(
                Event.workspace_id == workspace_id,
                Event.event.in_(targets),
                Event.timestamp >= _ts(start),
                Event.timestamp < _ts(end),
                Event.profile_id.is_not(None),
            )
            .distinct()
        )
    )


def run_model(
    runtime: Runtime, workspace_id: int, spec: Mapping[str, Any], purchase: PurchaseSettings, now: datetime
) -> int:
    """Train, validate and store one propensity model; write its scores when usable; returns the run id."""
    from rapport.process import scores_service
    from rapport.process.scores import propensity

    started = time.perf_counter()
    name, days = str(spec["name"]), int(spec["days"])
    targets = list(purchase.events) if spec["event"] == PURCHASE else [str(spec["event"])]
    params = {
        "event": spec["event"],
        "days": days,
        "features": list(FEATURES),
        "reference_dates": REFERENCE_DATES,
    }
    run_id = scores_service._record(runtime, workspace_id, "propensity", name, now, params)
    try:
        blocks, labels, dates = [], [], []
        with runtime.read_sessions() as db:
            for k in range(REFERENCE_DATES):
                at = now - timedelta(days=days * (k + 1))
                ids, matrix = features_at(db, workspace_id, purchase, targets, at)
                positive = labels_between(db, workspace_id, targets, at, at + timedelta(days=days))
                blocks.append(matrix)
                labels.append(np.fromiter((int(i) in positive for i in ids), dtype=np.int8, count=ids.size))
                dates.append(np.full(ids.size, np.datetime64(at.replace(tzinfo=None), "D")))
            now_ids, now_matrix = features_at(db, workspace_id, purchase, targets, now)
        model = propensity.train(
            np.vstack(blocks),
            np.concatenate(labels),
            FEATURES,
            reference_dates=np.concatenate(dates),
            label_window=np.timedelta64(days, "D"),
        )
        summary = model.summary()
        scored = 0
        if model.usable and now_ids.size:
            probabilities = model.predict(now_matrix)
            scored = scores_service._write(
                runtime, workspace_id, now_ids, {f"propensity_{name}": np.round(probabilities, 4).tolist()}
            )
        scores_service._finish(
            runtime,
            run_id,
            status="done",
            started=started,
            metrics=summary,
            usable=model.usable,
            model=model.to_bytes(),
            profiles_scored=scored,
        )
    except Exception as exc:
        scores_service._finish(
            runtime, run_id, status="failed", started=started, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
    return run_id


def run_all(
    runtime: Runtime,
    workspace_id: int,
    settings: Mapping[str, Any],
    purchase: PurchaseSettings,
    now: datetime,
) -> list[int]:
    """Run every propensity model of the workspace; returns the run ids."""
    return [run_model(runtime, workspace_id, spec, purchase, now) for spec in models_of(settings)]


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
