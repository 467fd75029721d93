"""Scores, the service: read per-profile inputs in aggregate SQL passes, run the pure models, write the
profiles' scores (``ProfileScores``, a narrow table of their own) in bulk, record runs.

Kinds: ``rfm`` (rfm_r/f/m, rfm_segment, loyalty_score, loyalty_level), ``clv`` (clv_12m, p_alive,
churn_danger, churn_band, value_tier, expected_purchases_90d) and ``propensity`` (``propensity_<name>``
for each model of the workspace setting ``propensity``; default one model, ``purchase_30d``). Each kind
records a :class:`ScoreRun`; a failure records a failed run with the reason and leaves previous values.

The flow for a million profiles: one grouped read of the live profiles, one of purchases by (profile, day)
(plus one activity pass per propensity model, on a second thread and connection meanwhile), numpy for every
score, then **one** write pass in which each profile gets a single merge-patch carrying the keys of every kind
that succeeded (chunks of ``WRITE_BATCH`` profiles, one transaction each; ``WRITERS`` at once on
PostgreSQL). Runs are marked done after their values are written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.models import ScoreRun, Workspace
from rapport.process import propensity_service, repository, score_keys, score_repository
from rapport.process.score_patches import REMOVE, SET, Column, build_patches
from rapport.process.score_repository import Population
from rapport.process.scores import bgnbd, clv, gamma_gamma, loyalty, rfm, summary
from rapport.process.scores.errors import ScoreFitFailed
from rapport.process.scores.features import DailyEvents, positions
from rapport.runtime import Runtime
from rapport.worker import queue

log = logging.getLogger("rapport.process.scores")

KINDS: tuple[str, ...] = ("rfm", "clv", "propensity")
#: Profiles per write transaction.
WRITE_BATCH = 20_000
#: Concurrent write transactions on PostgreSQL.
WRITERS = 2


@dataclass
class Stopwatch:
    """Wall-clock and this process's CPU seconds per named stage of a score run (repeats add up)."""

    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block under ``name``."""
        started, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu

    def add(self, name: str, seconds: float, cpu: float) -> None:
        """Add a stage timed elsewhere (on another thread: ``cpu`` is that thread's own)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu


@dataclass(frozen=True)
class Inputs:
    """What every score starts from: the live profiles and their purchases by day, joined."""

    population: Population
    purchases: DailyEvents
    orders: np.ndarray  # per live profile
    spend: np.ndarray
    last_day: np.ndarray  # epoch day of the last purchase, NaN for never purchased


@dataclass
class KindResult:
    """What one kind produced: its columns for the write, and what its run records."""

    run_id: int
    columns: list[Column] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    usable: bool = True
    profiles: int = 0
    model: bytes | None = None


def read_inputs(db: Session, workspace_id: int, now: datetime) -> Inputs:
    """Read the live profiles and purchases before ``now`` (two grouped SQL passes) and join them."""
    purchase = repository.purchase_settings(db, workspace_id)
    pop = score_repository.population(db, workspace_id)
    days = score_repository.purchase_days(db, workspace_id, purchase, before=now)
    pos, known = positions(pop.ids, days.profile_ids)
    where = pos[known]
    orders = np.bincount(where, weights=days.counts[known], minlength=pop.ids.size).astype(np.int64)
    spend = np.bincount(where, weights=days.values[known], minlength=pop.ids.size)
    latest = np.full(pop.ids.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, where, days.days[known])
    last = np.where(latest == np.iinfo(np.int64).min, np.nan, latest.astype(np.float64))
    return Inputs(population=pop, purchases=days, orders=orders, spend=spend, last_day=last)


def score_rfm(inputs: Inputs, now: datetime) -> tuple[list[Column], dict[str, Any]]:
    """RFM quintiles and segment, loyalty score and level, for every live profile: (columns, metrics)."""
    today = score_repository.day_number(now)
    pop = inputs.population
    bought = inputs.orders > 0
    days_since = np.where(bought, today - inputs.last_day, np.nan)
    scores = rfm.score_rfm(days_since, inputs.orders, np.where(bought, inputs.spend, np.nan))
    tenure = np.maximum(today - pop.first_day, 0).astype(np.float64)
    loyal = loyalty.score_loyalty(tenure, inputs.orders, inputs.spend)
    columns = [
        Column.numbers("rfm_r", scores.r),
        Column.numbers("rfm_f", scores.f),
        Column.numbers("rfm_m", scores.m),
        Column.names("rfm_segment", scores.segment, [s.value for s in rfm.SEGMENTS]),
        Column.numbers("loyalty_score", loyal.score),
        Column.names("loyalty_level", loyal.level, [lv.value for lv in loyalty.LEVELS]),
    ]
    counts = np.bincount(scores.segment, minlength=len(rfm.SEGMENTS))
    segments = {s.value: int(c) for s, c in zip(rfm.SEGMENTS, counts, strict=True) if c}
    return columns, {"profiles": int(pop.ids.size), "purchasers": int(bought.sum()), "segments": segments}


def score_clv(
    inputs: Inputs, now: datetime, watch: Stopwatch
) -> tuple[list[Column], dict[str, Any], dict[str, Any]]:
    """Fit BG/NBD and Gamma-Gamma on the purchasers; CLV, P(alive), churn and tiers: (columns, params, metrics)."""
    days = inputs.purchases
    pop = inputs.population
    end = np.datetime64(now.replace(tzinfo=None), "D")
    with watch.stage("clv_fit"):
        summ = summary.summarize_transactions(
            days.profile_ids, days.days.astype("datetime64[D]"), days.values, observation_end=end, unit="days"
        )
        if summ.customer_ids.size == 0:
            raise ScoreFitFailed("no purchases yet")
        fit_p = bgnbd.fit_bgnbd(summ.x, summ.t_x, summ.T)
        fit_s = gamma_gamma.fit_gamma_gamma(summ.x, summ.mean_value)
    with watch.stage("clv_predict"):
        value = clv.predict_clv(
            fit_p, fit_s, summ.x, summ.t_x, summ.T, summ.mean_value, unit_days=summ.unit_days
        )
        # P(alive) and expected purchases depend on (x, t_x, T) only: once per distinct history.
        ux, utx, uT, _, inverse = bgnbd.unique_histories(summ.x, summ.t_x, summ.T)
        alive = bgnbd.p_alive(fit_p, ux, utx, uT)[inverse]
        expected = bgnbd.expected_purchases(fit_p, 90.0, ux, utx, uT)[inverse]
        danger = 1.0 - alive
        bands = clv.churn_band_codes(danger)
        tiers = clv.value_tier_codes(value)
        pos, known = positions(pop.ids, summ.customer_ids.astype(np.int64))
        where = pos[known]
        state = np.full(pop.ids.size, REMOVE, dtype=np.int8)
        state[where] = SET

        def spread(values: np.ndarray, fill: Any = 0) -> np.ndarray:
            out = np.full(pop.ids.size, fill, dtype=values.dtype)
            out[where] = values[known]
            return out

        columns = [
            Column.numbers("clv_12m", spread(value), digits=2, state=state),
            Column.numbers("p_alive", spread(alive), digits=4, state=state),
            Column.numbers("churn_danger", spread(danger), digits=4, state=state),
            Column.names("churn_band", spread(bands), [b.value for b in clv.CHURN_BANDS], state=state),
            Column.names("value_tier", spread(tiers), [t.value for t in clv.VALUE_TIERS], state=state),
            Column.numbers("expected_purchases_90d", spread(expected), digits=4, state=state),
        ]
    params = {"bgnbd": fit_p.to_dict(), "gamma_gamma": fit_s.to_dict(), "unit": "days", "months": 12}
    metrics = {
        "profiles": int(known.sum()),
        "customers": int(summ.customer_ids.size),
        "repeat_customers": int((summ.x > 0).sum()),
        "mean_clv_12m": round(float(value.mean()), 2),
        "churn_bands": {b.value: int((bands == i).sum()) for i, b in enumerate(clv.CHURN_BANDS)},
    }
    return columns, params, metrics


def write_columns(runtime: Runtime, workspace_id: int, ids: np.ndarray, columns: Sequence[Column]) -> int:
    """Write one merge-patch per profile carrying every column, in chunks of their own transactions.

    On PostgreSQL ``WRITERS`` chunks are written at once on as many connections: the UPDATE is the server's
    work (a new version of each row and its index entries), the rows are disjoint, and psycopg releases the
    GIL while it waits. SQLite has one writer at a time, so its chunks go one after the other.
    """

    def write(start: int) -> int:
        chunk = build_patches(ids, columns, start, min(ids.size, start + WRITE_BATCH))
        if not chunk.ids:
            return 0
        with runtime.sessions() as db:
            written = score_repository.merge_patches(
                db, workspace_id, chunk.ids, chunk.patches, chunk.removed
            )
            db.commit()
        return written

    starts = range(0, ids.size, WRITE_BATCH)
    if runtime.engine.dialect.name == "sqlite" or len(starts) < 2:
        return sum(write(start) for start in starts)
    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="scores-write") as pool:
        return sum(pool.map(write, starts))


def _model_reads(
    runtime: Runtime, workspace_id: int, spec: dict[str, Any], now: datetime
) -> propensity_service.ModelReads:
    reads = propensity_service.read_model_inputs(runtime, workspace_id, spec, now)
    # Load scikit-learn here too, off the main thread's path (about a second of imports).
    from rapport.process.scores import propensity  # noqa: F401

    return reads


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


def record_run(
    runtime: Runtime, workspace_id: int, kind: str, name: str, now: datetime, params: dict[str, Any]
) -> int:
    """Record a running score run in its own transaction; returns its id."""
    with runtime.sessions() as db:
        run = ScoreRun(
            workspace_id=workspace_id, kind=kind, name=name, status="running", params=params, created_at=now
        )
        db.add(run)
        db.commit()
        return int(run.id)


def fail_run(runtime: Runtime, run_id: int, started: float, exc: BaseException) -> None:
    """Mark a run failed with the reason (its previous values stay as they were)."""
    _finish(runtime, run_id, status="failed", started=started, error=f"{type(exc).__name__}: {exc}"[:2000])


def run_scores(
    runtime: Runtime,
    workspace_id: int,
    kinds: Sequence[str] | None,
    now: datetime,
    *,
    stopwatch: Stopwatch | None = None,
) -> list[int]:
    """Compute the given kinds (default all) for the workspace; returns the ids of the recorded runs."""
    watch = stopwatch or Stopwatch()
    wanted = list(kinds or KINDS)
    for kind in wanted:
        if kind not in KINDS:
            raise ValueError(f"unknown score kind {kind!r}")
    started = time.perf_counter()
    with runtime.read_sessions() as db:
        settings = db.scalar(select(Workspace.settings).where(Workspace.id == workspace_id)) or {}
    models = propensity_service.models_of(settings) if "propensity" in wanted else []
    done: list[KindResult] = []
    run_ids: list[int] = []
    # The propensity models' own reads (every event of the workspace) run on a second thread and
    # connection while this one reads the shared inputs and scores RFM and CLV: pysqlite and psycopg
    # release the GIL while the database works, so a two-core machine does both at once.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scores-read") as pool:
        pending = [pool.submit(_model_reads, runtime, workspace_id, spec, now) for spec in models]
        try:
            with watch.stage("read"), runtime.read_sessions() as db:
                inputs = read_inputs(db, workspace_id, now)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        read_seconds = round(time.perf_counter() - started, 3)
        for kind in wanted:
            specs = models if kind == "propensity" else [{"name": kind}]
            for index, spec in enumerate(specs):
                params: dict[str, Any] = {"read_seconds": read_seconds}
                if kind == "propensity":
                    params.update(propensity_service.run_params(spec))
                run_id = record_run(runtime, workspace_id, kind, str(spec["name"]), now, params)
                run_ids.append(run_id)
                try:
                    result = KindResult(run_id=run_id, params=params)
                    if kind == "rfm":
                        with watch.stage("rfm"):
                            result.columns, result.metrics = score_rfm(inputs, now)
                        result.profiles = int(inputs.population.ids.size)
                    elif kind == "clv":
                        result.columns, fitted, result.metrics = score_clv(inputs, now, watch)
                        result.params.update(fitted)
                        result.profiles = int(result.metrics["profiles"])
                    else:
                        with watch.stage("propensity_wait"):
                            reads = pending[index].result()
                        watch.add("propensity_read", reads.seconds, reads.cpu)
                        propensity_service.score_model(spec, inputs, reads, now, watch, result)
                    done.append(result)
                except Exception as exc:
                    log.warning(
                        "score run failed", extra={"workspace_id": workspace_id, "kind": kind}, exc_info=exc
                    )
                    fail_run(runtime, run_id, started, exc)
    try:
        with watch.stage("write"):
            write_columns(runtime, workspace_id, inputs.population.ids, [c for r in done for c in r.columns])
    except Exception as exc:
        log.warning("writing scores failed", extra={"workspace_id": workspace_id}, exc_info=exc)
        for result in done:
            fail_run(runtime, result.run_id, started, exc)
        return run_ids
    with watch.stage("record"):
        for result in done:
            _finish(
                runtime,
                result.run_id,
                status="done",
                started=started,
                params=result.params,
                metrics=result.metrics,
                usable=result.usable,
                model=result.model,
                profiles_scored=result.profiles,
            )
    if done:
        with runtime.sessions() as db:  # segments on scores follow (rapport.segments.score_refresh)
            queue.enqueue(
                db,
                kind=score_keys.SCORED_JOB,
                workspace_id=workspace_id,
                payload={"runs": [r.run_id for r in done]},
                dedupe_key=f"{score_keys.SCORED_JOB}:{workspace_id}:{done[-1].run_id}",
                now=runtime.clock.now(),
            )
            db.commit()
    return run_ids


def list_runs(db: Session, *, workspace_id: int, kind: str | None = None, limit: int = 50) -> list[ScoreRun]:
    """Return the workspace's score runs, newest first."""
    stmt = select(ScoreRun).where(ScoreRun.workspace_id == workspace_id)
    if kind:
        stmt = stmt.where(ScoreRun.kind == kind)
    return list(db.scalars(stmt.order_by(ScoreRun.created_at.desc(), ScoreRun.id.desc()).limit(limit)))
