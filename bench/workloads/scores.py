"""B6: scores for every profile of the generated workspace (RFM, BG/NBD + Gamma-Gamma CLV, P(alive),
one propensity model), each stage timed, on SQLite and PostgreSQL.

The store is the benchmarks' shared one (:mod:`bench.store`): the generated workspace imported through
Rapport's importer and computed-trait recompute once per (size, seed), copied into PostgreSQL with ``COPY``;
this workload scores its own copy of it on each database and drops the copy after. Each measured run is a
fresh process calling ``scores_service.run_scores`` (all kinds) with a stopwatch, so its peak RSS is its
own; one more run per store computes RFM alone, end to end. No same-run reference is defined for B6: the
figures are absolute, held against the targets (RFM < 2 s, all < 60 s, < 2 GB) and noisy on a shared
machine. Runs score the same copy in turn (a run overwrites the keys the previous one wrote, as the nightly
job does).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench import store as bench_store
from bench.data import DataFiles, ensure_data
from bench.harness import Context, Measurement, Result, run_in_child

TITLE = "scores for all profiles: RFM, BG/NBD + Gamma-Gamma CLV, P(alive), propensity"
TARGET = "RFM < 2 s; all < 60 s; < 2 GB"


def score_run(url: str, workspace_id: int, now: str, kinds: list[str] | None) -> dict[str, Any]:
    """Child: run the scores service once with a stopwatch; return the stage seconds and the runs' facts."""
    from sqlalchemy import select

    from rapport.kit.logs import configure_logging
    from rapport.models import ScoreRun
    from rapport.process import scores_service
    from rapport.process.scores_service import Stopwatch

    configure_logging(level="WARNING", json_lines=False)
    runtime = bench_store.open_runtime(url)
    watch = Stopwatch()
    started, cpu = time.perf_counter(), time.process_time()
    run_ids = scores_service.run_scores(
        runtime, int(workspace_id), kinds, datetime.fromisoformat(now), stopwatch=watch
    )
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    with runtime.read_sessions() as db:
        runs = [
            {
                "kind": r.kind,
                "name": r.name,
                "status": r.status,
                "usable": r.usable,
                "profiles": r.profiles_scored,
                "error": r.error,
                "auc": (r.metrics or {}).get("auc"),
            }
            for r in db.scalars(select(ScoreRun).where(ScoreRun.id.in_(run_ids)).order_by(ScoreRun.id))
        ]
    runtime.close()
    return {
        "total": total,
        "cpu": cpu,
        "stages": dict(watch.seconds),
        "stage_cpu": dict(watch.cpu),
        "runs": runs,
    }


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Copy the benchmark store, then time the scores ctx.runs times on each store."""
    data = ensure_data(ctx.size, ctx.seed, log=ctx.log)
    results = []
    for kind in ctx.stores:
        copy = None
        try:
            copy = bench_store.store_copy(ctx, data, kind, "b6")
            results.extend(_run_store(ctx, data, kind, copy))
        except Exception as exc:  # one store failing must not hide the other's figures
            ctx.log(f"  B6 {kind} failed: {exc}")
            results.append(Result("B6", TITLE, TARGET, status="failed", store=kind, note=str(exc)[:300]))
        finally:
            if copy is not None:
                copy.drop(ctx)
    return results


def _run_store(ctx: Context, data: DataFiles, kind: str, copy: bench_store.StoreCopy) -> list[Result]:
    """Run all kinds ctx.runs times and RFM alone once; one result row for each."""
    now = data.spec.reference_date.astimezone(UTC).isoformat()
    url, facts, ws = copy.url, copy.facts, copy.workspace_id
    total = Measurement("all scores", "s", higher_is_better=False)
    stages: dict[str, list[float]] = {}
    last: dict[str, Any] = {}
    cpus: list[float] = []
    for run_no in range(ctx.runs):
        out = run_in_child(f"{__name__}:score_run", url=url, workspace_id=ws, now=now, kinds=None)
        total.values.append(out["total"])
        total.rss_mb = max(total.rss_mb or 0.0, out["rss_mb"])
        for stage, seconds in out["stages"].items():
            stages.setdefault(stage, []).append(seconds)
        last = out
        failed = [r for r in out["runs"] if r["status"] != "done"]
        cpus.append(out["cpu"])
        ctx.log(
            f"  B6 {kind} run {run_no + 1}/{ctx.runs}: {out['total']:.1f} s (this process's CPU "
            f"{out['cpu']:.1f} s), RSS {out['rss_mb']:.0f} MB; "
            + ", ".join(f"{k} {v:.2f}" for k, v in out["stages"].items())
            + (f"; FAILED {failed}" if failed else "")
        )
    rfm_only = run_in_child(f"{__name__}:score_run", url=url, workspace_id=ws, now=now, kinds=["rfm"])
    ctx.log(
        f"  B6 {kind} RFM alone: {rfm_only['total']:.2f} s (CPU {rfm_only['cpu']:.2f} s), "
        f"stages {rfm_only['stages']}"
    )
    rfm = Measurement("RFM alone", "s", [rfm_only["total"]], higher_is_better=False)
    rfm.rss_mb = rfm_only["rss_mb"]
    med = {k: sorted(v)[len(v) // 2] for k, v in stages.items()}
    runs = "; ".join(
        f"{r['name']} {r['status']}"
        + (f" AUC {r['auc']:.3f}" if r.get("auc") is not None else "")
        + (f" {r['profiles']:,} profiles" if r.get("profiles") else "")
        for r in last.get("runs", [])
    )
    note = (
        f"{facts['profiles']:,} customers, {facts['events']:,} events; client CPU median "
        f"{sorted(cpus)[len(cpus) // 2]:.1f} s; stages (median s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
        + f"; {runs}; no same-run reference (absolute vs target)"
    )
    return [
        Result("B6", TITLE, TARGET, store=kind, measurement=total, note=note),
        Result(
            "B6",
            "RFM alone, end to end (read, score, write)",
            "RFM < 2 s",
            store=kind,
            measurement=rfm,
            note="stages: " + ", ".join(f"{k} {v:.2f}" for k, v in rfm_only["stages"].items()),
        ),
    ]
