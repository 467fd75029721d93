"""Scores, the service: read purchase aggregates, fit the pure models, write ``Profile.computed``, record runs.

Kinds: ``rfm`` (rfm_r/f/m, rfm_segment, loyalty_score, loyalty_level), ``clv`` (clv_12m, p_alive,
churn_danger, churn_band, value_tier, expected_purchases_90d) and ``propensity`` (``propensity_<name>``
for each model of the workspace setting ``propensity``; default one model, ``purchase_30d``). Each kind
records a :class:`ScoreRun`; a failure records a failed run with the reason and leaves previous values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from rapport.db.base import UTCDateTime
from rapport.models import Event, Profile, ScoreRun, Workspace
from rapport.process import repository
from rapport.process.computed import PurchaseSettings
from rapport.process.computed_sql import number_at
from rapport.process.scores import bgnbd, clv, gamma_gamma, loyalty, rfm, summary
from rapport.process.scores.errors import ScoreFitFailed
from rapport.runtime import Runtime

log = logging.getLogger("rapport.process.scores")

KINDS: tuple[str, ...] = ("rfm", "clv", "propensity")
RFM_KEYS = ("rfm_r", "rfm_f", "rfm_m", "rfm_segment", "loyalty_score", "loyalty_level")
CLV_KEYS = ("clv_12m", "p_alive", "churn_danger", "churn_band", "value_tier", "expected_purchases_90d")
WRITE_BATCH = 5000


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a timestamp as 'YYYY-MM-DD'."""

    inherit_cache = True


@compiles(utc_day, "sqlite")
def _day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substr({compiler.process(next(iter(element.clauses)))}, 1, 10)"


@compiles(utc_day, "postgresql")
def _day_pg(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(next(iter(element.clauses)))} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@dataclass(frozen=True)
class PurchaseDays:
    """Purchases grouped by (profile, UTC day): the one aggregation every score starts from."""

    profile_ids: np.ndarray
    days: np.ndarray  # datetime64[D]
    orders: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Population:
    """Every live profile of the workspace and its purchase totals (0 for never purchased)."""

    ids: np.ndarray
    first_seen: np.ndarray  # datetime64[D], NaT when unknown
    orders: np.ndarray
    spend: np.ndarray
    last_day: np.ndarray  # datetime64[D], NaT for never purchased


def purchase_days(
    db: Session, workspace_id: int, purchase: PurchaseSettings, *, before: datetime
) -> PurchaseDays:
    """Aggregate purchase events before ``before`` by (profile, UTC day) in one SQL pass."""
    value = func.coalesce(number_at(purchase.value_property), 0.0)
    day = utc_day(Event.timestamp)
    stmt = (
        select(Event.profile_id, day.label("day"), func.count().label("n"), func.sum(value).label("v"))
        .where(
            Event.workspace_id == workspace_id,
            Event.event.in_(list(purchase.events)),
            Event.profile_id.is_not(None),
            Event.timestamp < _param(before),
        )
        .group_by(Event.profile_id, day)
        .order_by(Event.profile_id, day)
    )
    rows = db.execute(stmt).all()
    return PurchaseDays(
        profile_ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        days=np.asarray([r[1] for r in rows], dtype="datetime64[D]"),
        orders=np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows)),
        values=np.fromiter((float(r[3] or 0.0) for r in rows), dtype=np.float64, count=len(rows)),
    )


def _param(value: datetime) -> ColumnElement[Any]:
    return bindparam(None, value, type_=UTCDateTime())


def population(db: Session, workspace_id: int, days: PurchaseDays) -> Population:
    """Join the purchase days onto every live profile."""
    rows = db.execute(
        select(Profile.id, Profile.first_seen_at, Profile.created_at)
        .where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
        .order_by(Profile.id)
    ).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    first = np.asarray([(r[1] or r[2]).replace(tzinfo=None) for r in rows], dtype="datetime64[D]")
    orders = np.zeros(ids.size, dtype=np.int64)
    spend = np.zeros(ids.size)
    last = np.full(ids.size, np.datetime64("NaT"), dtype="datetime64[D]")
    if days.profile_ids.size:
        pos = np.searchsorted(ids, days.profile_ids)
        ok = (pos < ids.size) & (ids[np.minimum(pos, ids.size - 1)] == days.profile_ids)
        pos, d = pos[ok], days
        np.add.at(orders, pos, d.orders[ok])
        np.add.at(spend, pos, d.values[ok])
        latest = np.full(ids.size, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, pos, d.days[ok].astype(np.int64))
        has = latest != np.iinfo(np.int64).min
        last[has] = latest[has].astype("datetime64[D]")
    return Population(ids=ids, first_seen=first, orders=orders, spend=spend, last_day=last)


def _start(
    db: Session, workspace_id: int, kind: str, name: str, now: datetime, params: dict[str, Any]
) -> ScoreRun:
    run = ScoreRun(
        workspace_id=workspace_id, kind=kind, name=name, status="running", params=params, created_at=now
    )
    db.add(run)
    db.flush()
    return run


def _write(
    runtime: Runtime,
    workspace_id: int,
    ids: np.ndarray,
    columns: dict[str, Sequence[Any]],
    remove: Sequence[str] = (),
) -> int:
    """Write per-profile values in batches of their own transactions (keys not named are left alone)."""
    keys = list(columns)
    written = 0
    for start in range(0, ids.size, WRITE_BATCH):
        stop = min(ids.size, start + WRITE_BATCH)
        patches = {
            int(ids[i]): {k: columns[k][i] for k in keys if columns[k][i] is not None}
            for i in range(start, stop)
        }
        with runtime.sessions() as db:
            written += repository.patch_computed(db, workspace_id, patches, remove=remove)
            db.commit()
    return written


def _py(values: np.ndarray, digits: int | None = None) -> list[Any]:
    if digits is not None:
        values = np.round(values.astype(np.float64), digits)
    return values.tolist()


def run_rfm(runtime: Runtime, workspace_id: int, pop: Population, now: datetime) -> dict[str, Any]:
    """RFM quintiles and segment, loyalty score and level, for every profile."""
    today = np.datetime64(now.replace(tzinfo=None), "D")
    bought = pop.orders > 0
    days_since = np.where(bought, (today - pop.last_day).astype("timedelta64[D]").astype(np.float64), np.nan)
    scores = rfm.score_rfm(days_since, pop.orders, np.where(bought, pop.spend, np.nan))
    tenure = np.where(
        np.isnat(pop.first_seen), 0.0, (today - pop.first_seen).astype("timedelta64[D]").astype(np.float64)
    )
    loyal = loyalty.score_loyalty(tenure, pop.orders, pop.spend)
    written = _write(
        runtime,
        workspace_id,
        pop.ids,
        {
            "rfm_r": _py(scores.r),
            "rfm_f": _py(scores.f),
            "rfm_m": _py(scores.m),
            "rfm_segment": scores.segment_names().tolist(),
            "loyalty_score": _py(loyal.score),
            "loyalty_level": loyal.level_names().tolist(),
        },
    )
    segments, counts = np.unique(scores.segment_names(), return_counts=True)
    return {
        "profiles": written,
        "purchasers": int(bought.sum()),
        "segments": dict(zip(segments.tolist(), counts.tolist(), strict=True)),
    }


def run_clv(
    runtime: Runtime, workspace_id: int, days: PurchaseDays, pop: Population, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit BG/NBD and Gamma-Gamma on the purchasers and write CLV, P(alive), churn and tiers; (params, metrics)."""
    end = np.datetime64(now.replace(tzinfo=None), "D")
    summ = summary.summarize_transactions(
        days.profile_ids, days.days, days.values, observation_end=end, unit="days"
    )
    if summ.customer_ids.size == 0:
        raise ScoreFitFailed("no purchases yet")
    fit_p = bgnbd.fit_bgnbd(summ.x, summ.t_x, summ.T)
    fit_s = gamma_gamma.fit_gamma_gamma(summ.x, summ.mean_value)
    value = clv.predict_clv(fit_p, fit_s, summ.x, summ.t_x, summ.T, summ.mean_value, unit_days=summ.unit_days)
    alive = bgnbd.p_alive(fit_p, summ.x, summ.t_x, summ.T)
    danger = 1.0 - alive
    expected = bgnbd.expected_purchases(fit_p, 90.0, summ.x, summ.t_x, summ.T)
    bands = clv.churn_bands(danger)
    tiers = clv.value_tiers(value)
    buyers = set(summ.customer_ids.tolist())
    gone = np.asarray([pid for pid in pop.ids.tolist() if pid not in buyers], dtype=np.int64)
    written = _write(
        runtime,
        workspace_id,
        summ.customer_ids.astype(np.int64),
        {
            "clv_12m": _py(value, 2),
            "p_alive": _py(alive, 4),
            "churn_danger": _py(danger, 4),
            "churn_band": bands.tolist(),
            "value_tier": tiers.tolist(),
            "expected_purchases_90d": _py(expected, 4),
        },
    )
    if gone.size:
        _write(runtime, workspace_id, gone, {}, remove=CLV_KEYS)
    params = {"bgnbd": fit_p.to_dict(), "gamma_gamma": fit_s.to_dict(), "unit": "days", "months": 12}
    metrics = {
        "profiles": written,
        "customers": int(summ.customer_ids.size),
        "repeat_customers": int((summ.x > 0).sum()),
        "mean_clv_12m": round(float(value.mean()), 2),
        "churn_bands": {b: int((bands == b).sum()) for b in ("low", "medium", "high", "critical")},
    }
    return params, metrics


def _finish(runtime: Runtime, run_id: int, *, status: str, started: float, **fields: Any) -> None:
    with runtime.sessions() as db:
        run = db.get(ScoreRun, run_id)
        assert run is not None
        run.status = status
        for key, value in fields.items():
            setattr(run, key, value)
        run.metrics = {
            **(fields.get("metrics") or run.metrics or {}),
            "seconds": round(time.perf_counter() - started, 3),
        }
        run.finished_at = runtime.clock.now()
        db.commit()


def _record(
    runtime: Runtime, workspace_id: int, kind: str, name: str, now: datetime, params: dict[str, Any]
) -> int:
    with runtime.sessions() as db:
        run = _start(db, workspace_id, kind, name, now, params)
        db.commit()
        return run.id


def run_scores(runtime: Runtime, workspace_id: int, kinds: Sequence[str] | None, now: datetime) -> list[int]:
    """Compute the given kinds (default all) for the workspace; returns the ids of the recorded runs."""
    wanted = list(kinds or KINDS)
    for kind in wanted:
        if kind not in KINDS:
            raise ValueError(f"unknown score kind {kind!r}")
    with runtime.read_sessions() as db:
        purchase = repository.purchase_settings(db, workspace_id)
        t0 = time.perf_counter()
        days = purchase_days(db, workspace_id, purchase, before=now)
        pop = population(db, workspace_id, days)
        settings = db.scalar(select(Workspace.settings).where(Workspace.id == workspace_id)) or {}
    read_seconds = time.perf_counter() - t0
    run_ids: list[int] = []
    for kind in wanted:
        if kind == "propensity":
            from rapport.process import propensity_service

            run_ids.extend(propensity_service.run_all(runtime, workspace_id, settings, purchase, now))
            continue
        started = time.perf_counter()
        run_id = _record(runtime, workspace_id, kind, kind, now, {"read_seconds": round(read_seconds, 3)})
        run_ids.append(run_id)
        try:
            if kind == "rfm":
                metrics = run_rfm(runtime, workspace_id, pop, now)
                _finish(
                    runtime,
                    run_id,
                    status="done",
                    started=started,
                    metrics=metrics,
                    usable=True,
                    profiles_scored=metrics["profiles"],
                )
            else:
                params, metrics = run_clv(runtime, workspace_id, days, pop, now)
                _finish(
                    runtime,
                    run_id,
                    status="done",
                    started=started,
                    params={"read_seconds": round(read_seconds, 3), **params},
                    metrics=metrics,
                    usable=True,
                    profiles_scored=metrics["profiles"],
                )
        except Exception as exc:
            log.warning("score run failed", extra={"workspace_id": workspace_id, "kind": kind}, exc_info=exc)
            _finish(
                runtime, run_id, status="failed", started=started, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
    return run_ids


def list_runs(db: Session, *, workspace_id: int, kind: str | None = None, limit: int = 50) -> list[ScoreRun]:
    """Return the workspace's score runs, newest first."""
    stmt = select(ScoreRun).where(ScoreRun.workspace_id == workspace_id)
    if kind:
        stmt = stmt.where(ScoreRun.kind == kind)
    return list(db.scalars(stmt.order_by(ScoreRun.created_at.desc(), ScoreRun.id.desc()).limit(limit)))
