"""B6: scores for every profile of the generated workspace (RFM, BG/NBD + Gamma-Gamma CLV, P(alive),
one propensity model), each stage timed, on SQLite and PostgreSQL.

The store is the generated workspace imported through Rapport's importer (``import_profile_rows``,
``import_event_rows``, the B3 path), built once per (size, seed) into ``bench/out/stores/`` and reused,
because importing a million customers takes far longer than scoring them. PostgreSQL gets the same rows
copied from that SQLite store with ``COPY`` into a database of the run's throwaway cluster (identical data;
the importer at PostgreSQL speed would dominate the run). Each measured run is a fresh process calling
``scores_service.run_scores`` (all kinds) with a stopwatch, so its peak RSS is its own; one more run
per store computes RFM alone, end to end. No same-run reference is defined for B6: the figures are
absolute, held against the targets (RFM < 2 s, all < 60 s, < 2 GB) and noisy on a shared machine.
Runs score the same store in place (a run overwrites the keys the previous one wrote, as the nightly job does).
"""

# ruff: noqa: S608  (fixed COPY/SELECT statements over the models' own table and column names)
from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.data import DataFiles, ensure_data
from bench.harness import OUT, Context, Measurement, Result, run_in_child

TITLE = "scores for all profiles: RFM, BG/NBD + Gamma-Gamma CLV, P(alive), propensity"
TARGET = "RFM < 2 s; all < 60 s; < 2 GB"
#: Bump when the store's content changes (importer or schema), so cached stores are rebuilt.
STORE_FORMAT = 1
SLUG = "bench-scores"
#: Tables copied from the SQLite store into PostgreSQL, parents first.
COPIED_TABLES = ("workspaces", "profiles", "identities", "events")
COPY_BATCH = 20_000


def _runtime(url: str) -> Any:
    from rapport.config import Settings
    from rapport.runtime import build_runtime

    settings = Settings(database_url=url, secret_key="bench-secret", log_level="WARNING", db_pool_size=2)
    return build_runtime(settings)


def build_store(url: str, profiles_csv: str, events_jsonl: str) -> dict[str, Any]:
    """Child: migrate ``url`` and import the workspace files through the importer; return the counts."""
    from rapport.accounts import service as accounts_service
    from rapport.collect.importer import import_event_rows, import_profile_rows
    from rapport.db import migrate
    from rapport.kit.logs import configure_logging
    from rapport.synth.files import read_jsonl, read_profiles_csv

    configure_logging(level="WARNING", json_lines=False)
    runtime = _runtime(url)
    migrate.upgrade(runtime.engine)
    with runtime.sessions() as db:
        workspace_id = int(accounts_service.create_workspace(db, name="Bench scores", slug=SLUG).id)
        db.commit()
    t0 = time.perf_counter()
    p = import_profile_rows(runtime, workspace_id=workspace_id, rows=read_profiles_csv(Path(profiles_csv)))
    e = import_event_rows(runtime, workspace_id=workspace_id, rows=read_jsonl(Path(events_jsonl)))
    seconds = time.perf_counter() - t0
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    runtime.close()
    return {"workspace_id": workspace_id, "profiles": p.imported, "events": e.imported, "seconds": seconds}


def ensure_store(data: DataFiles, ctx: Context) -> tuple[Path, dict[str, Any]]:
    """Return the cached SQLite store of ``data`` (built through the importer when missing) and its facts."""
    directory = OUT / "stores"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"b6-{data.profiles}-s{data.spec.seed}-v{STORE_FORMAT}.db"
    marker = path.with_suffix(".json")
    if marker.exists() and path.exists():
        return path, dict(json.loads(marker.read_text()))
    for old in directory.glob(path.name + "*"):
        old.unlink()
    ctx.log(f"  B6: importing {data.profiles:,} customers into {path} (once; cached for later runs) ...")
    facts = run_in_child(
        f"{__name__}:build_store",
        url=f"sqlite:///{path}",
        profiles_csv=str(data.profiles_csv),
        events_jsonl=str(data.events_jsonl),
    )
    marker.write_text(json.dumps(facts))
    ctx.log(
        f"  B6: imported {facts['profiles']:,} profiles, {facts['events']:,} events in "
        f"{facts['seconds']:.0f} s"
    )
    return path, facts


def copy_to_postgresql(sqlite_path: str, url: str) -> dict[str, Any]:
    """Child: migrate ``url`` and COPY the store's rows from SQLite into it; return rows and seconds."""
    import psycopg
    from sqlalchemy.engine import make_url

    from rapport.db import migrate
    from rapport.db.engine import build_engine

    engine = build_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    src = sqlite3.connect(sqlite_path)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    copied: dict[str, int] = {}
    with psycopg.connect(plain) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        for table in COPIED_TABLES:
            columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
            names = ", ".join(f'"{c}"' for c in columns)
            n = 0
            cursor = src.execute(f"SELECT {names} FROM {table} ORDER BY id")
            with pg.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                while rows := cursor.fetchmany(COPY_BATCH):
                    for row in rows:
                        copy.write_row(row)
                    n += len(rows)
            pg.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
            copied[table] = n
        pg.commit()
        pg.autocommit = True
        pg.execute("VACUUM ANALYZE")
    src.close()
    return {"rows": copied, "seconds": time.perf_counter() - started}


def score_run(url: str, slug: str, now: str, kinds: list[str] | None) -> dict[str, Any]:
    """Child: run the scores service once with a stopwatch; return the stage seconds and the runs' facts."""
    from sqlalchemy import select

    from rapport.kit.logs import configure_logging
    from rapport.models import ScoreRun, Workspace
    from rapport.process import scores_service
    from rapport.process.scores_service import Stopwatch

    configure_logging(level="WARNING", json_lines=False)
    runtime = _runtime(url)
    with runtime.read_sessions() as db:
        workspace_id = db.scalar(select(Workspace.id).where(Workspace.slug == slug))
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
    """Build (or reuse) the store, then time the scores ctx.runs times on each store."""
    data = ensure_data(ctx.size, ctx.seed, log=ctx.log)
    sqlite_path, facts = ensure_store(data, ctx)
    results = []
    for kind in ctx.stores:
        try:
            url = _store_url(ctx, kind, sqlite_path)
            results.extend(_run_store(ctx, data, kind, url, facts))
        except Exception as exc:  # one store failing must not hide the other's figures
            ctx.log(f"  B6 {kind} failed: {exc}")
            results.append(Result("B6", TITLE, TARGET, status="failed", store=kind, note=str(exc)[:300]))
    return results


def _store_url(ctx: Context, kind: str, sqlite_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{sqlite_path}"
    server = ctx.pg_server()
    url = str(server.create_database("bench_b6"))
    out = run_in_child(f"{__name__}:copy_to_postgresql", sqlite_path=str(sqlite_path), url=url)
    ctx.log(f"  B6 postgresql: copied {out['rows']} from the SQLite store in {out['seconds']:.0f} s")
    return url


def _run_store(ctx: Context, data: DataFiles, kind: str, url: str, facts: dict[str, Any]) -> list[Result]:
    """Run all kinds ctx.runs times and RFM alone once; one result row for each."""
    now = data.spec.reference_date.astimezone(UTC).isoformat()
    total = Measurement("all scores", "s", higher_is_better=False)
    stages: dict[str, list[float]] = {}
    last: dict[str, Any] = {}
    cpus: list[float] = []
    for run_no in range(ctx.runs):
        out = run_in_child(f"{__name__}:score_run", url=url, slug=SLUG, now=now, kinds=None)
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
    rfm_only = run_in_child(f"{__name__}:score_run", url=url, slug=SLUG, now=now, kinds=["rfm"])
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
