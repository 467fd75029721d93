"""B4: the reference segment of BENCHMARKS.md and four variants, count + a 20-profile sample, timed over
the runs: Rapport's segments service (``preview``) on SQLite and PostgreSQL against DuckDB running the same
definitions as hand-written SQL on the same data.

DuckDB's counts are the correctness oracle: Rapport's must be identical, or the row fails. A PostgreSQL store
restored from the cached dump gets ``VACUUM ANALYZE`` before it is measured: a dump carries no planner
statistics (the store it was dumped from had them), and without them PostgreSQL takes every table for a few rows. Rapport's store is
loaded through its own bulk path (``rapport.collect.importer``, then the computed-trait recompute that fills
``total_spend``) into SQLite once per (size, seed), copied row for row into PostgreSQL, and cached under
``bench/out/b4-cache/`` (the SQLite file and a ``pg_dump``); each run migrates its copy to head, so a schema
change needs no re-import.

Semantics, as of the data's reference date (the end of the generated year, 2026-11-01 by default):
"purchase" is an ``order_completed`` event (online or in store), "spend" is the sum of its ``total`` over
the whole history, windows are ``[as_of - N days, as_of)``, and anonymous events count for the customer
their ``anonymousId`` was later identified as. Each query is written the way one would by hand for DuckDB:
one pass over the relevant events with filtered per-customer aggregates, joined to the profiles; the count
and the 20-profile sample come from the same statement (``count(*) OVER ()``).
"""

# ruff: noqa: S608  (hand-written benchmark SQL over fixed literals, no user input)
from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.data import DataFiles, ensure_data
from bench.harness import OUT, Context, Measurement, Result, run_in_child

TITLE = "segment count + 20-profile sample"
TARGET = "<= 3x DuckDB on SQLite; < 1 s on PostgreSQL; identical counts"


@dataclass(frozen=True)
class Segment:
    """A benchmark segment: its name, its definition in words, the DuckDB SQL of its members and the same
    definition in Rapport's segment language."""

    name: str
    definition: str
    sql: str
    text: str = ""


_WINDOW = "ts >= $as_of - INTERVAL {days} DAY AND ts < $as_of"
_COLUMNS = {
    "buys_90": f"count(*) FILTER (WHERE event = 'order_completed' AND {_WINDOW.format(days=90)})",
    "buys_30": f"count(*) FILTER (WHERE event = 'order_completed' AND {_WINDOW.format(days=30)})",
    "spend": "sum(total) FILTER (WHERE event = 'order_completed')",
    "opened_30": f"count(*) FILTER (WHERE event = 'email_opened' AND {_WINDOW.format(days=30)})",
    "footwear_30": "count(*) FILTER (WHERE event = 'product_viewed' AND category = 'Footwear' AND "
    f"{_WINDOW.format(days=30)})",
}
_EVENTS_OF = {
    "buys_90": "order_completed",
    "buys_30": "order_completed",
    "spend": "order_completed",
    "opened_30": "email_opened",
    "footwear_30": "product_viewed",
}


def _segment_sql(columns: tuple[str, ...], where: str, *, city: bool = False) -> str:
    """One pass over the relevant events: per-customer aggregates, then the condition on them."""
    names = ", ".join(f"'{n}'" for n in sorted({_EVENTS_OF[c] for c in columns}))
    aggregates = ", ".join(f"{_COLUMNS[c]} AS {c}" for c in columns)
    source = f"SELECT user_id, {aggregates} FROM events WHERE event IN ({names}) GROUP BY user_id"
    local = " AND p.city IN ('Leeds', 'York')" if city else ""
    return f"SELECT p.user_id FROM profiles p JOIN ({source}) a ON a.user_id = p.user_id WHERE {where}{local}"


SEGMENTS: tuple[Segment, ...] = (
    Segment(
        "reference",
        "purchased >= 3 times in the last 90 days AND total spend > 200 AND email opened in the last 30 days "
        "AND city in (Leeds, York)",
        _segment_sql(
            ("buys_90", "spend", "opened_30"), "buys_90 >= 3 AND spend > 200 AND opened_30 > 0", city=True
        ),
        "purchased at least 3 times in last 90 days and total_spend > 200 and email.opened in last 30 days "
        'and city in ("Leeds", "York")',
    ),
    Segment(
        "v1 recent local buyers",
        "purchased at least once in the last 90 days AND city in (Leeds, York)",
        _segment_sql(("buys_90",), "buys_90 >= 1", city=True),
        'purchased in last 90 days and city in ("Leeds", "York")',
    ),
    Segment(
        "v2 big spenders", "total spend > 500", _segment_sql(("spend",), "spend > 500"), "total_spend > 500"
    ),
    Segment(
        "v3 engaged, lapsed",
        "email opened in the last 30 days AND NOT purchased in the last 90 days",
        _segment_sql(("opened_30", "buys_90"), "opened_30 > 0 AND buys_90 = 0"),
        "email.opened in last 30 days and not purchased in last 90 days",
    ),
    Segment(
        "v4 footwear browse abandonment",
        "viewed a Footwear product in the last 30 days AND NOT purchased in the last 30 days",
        _segment_sql(("footwear_30", "buys_30"), "footwear_30 > 0 AND buys_30 = 0"),
        # "email is set": DuckDB joins the imported customers; Rapport also keeps anonymous visitors' profiles
        'did "product_viewed" where category = "Footwear" in last 30 days and not purchased in last 30 days '
        "and email is set",
    ),
)

_EVENT_COLUMNS = (
    "{type: 'VARCHAR', event: 'VARCHAR', userId: 'VARCHAR', anonymousId: 'VARCHAR', "
    "timestamp: 'VARCHAR', properties: 'JSON'}"
)


def load(con: Any, data: DataFiles) -> dict[str, int]:
    """Load profiles and flattened events into DuckDB tables; return their row counts."""
    con.execute(
        f"CREATE OR REPLACE TABLE profiles AS SELECT * FROM read_csv('{data.profiles_csv}', header = true, "
        "all_varchar = true)"
    )
    con.execute(
        "CREATE OR REPLACE TABLE raw_events AS SELECT type, event, userId AS user_id, anonymousId AS anonymous_id, "
        "CAST(strptime(timestamp, '%Y-%m-%dT%H:%M:%S.%gZ') AS TIMESTAMP) AS ts, "
        "CAST(json_extract(properties, '$.total') AS DOUBLE) AS total, "
        "json_extract_string(properties, '$.category') AS category "
        f"FROM read_ndjson('{data.events_jsonl}', columns = {_EVENT_COLUMNS})"
    )
    con.execute(
        "CREATE OR REPLACE TABLE events AS SELECT coalesce(e.user_id, a.user_id) AS user_id, e.event, e.ts, "
        "e.total, e.category FROM raw_events e LEFT JOIN (SELECT anonymous_id, any_value(user_id) AS user_id "
        "FROM raw_events WHERE type = 'identify' AND anonymous_id IS NOT NULL GROUP BY anonymous_id) a "
        "USING (anonymous_id)"
    )
    con.execute("DROP TABLE raw_events")
    return {
        "profiles": int(con.execute("SELECT count(*) FROM profiles").fetchone()[0]),
        "events": int(con.execute("SELECT count(*) FROM events").fetchone()[0]),
    }


def evaluate(con: Any, segment: Segment, as_of: datetime) -> tuple[int, list[str]]:
    """Return the segment's member count and its first 20 user ids (by user id), in one query."""
    params = {"as_of": as_of.replace(tzinfo=None)} if "$as_of" in segment.sql else {}
    rows = con.execute(
        f"SELECT user_id, count(*) OVER () AS n FROM ({segment.sql}) ORDER BY user_id LIMIT 20", params
    ).fetchall()
    return (int(rows[0][1]) if rows else 0), [r[0] for r in rows]


CACHE_FORMAT = 1  # bump when what a cached store holds changes (importer, recompute)
_PG_DB = "bench_b4"
#: Windows in the language are ``now - N days < t <= now``, DuckDB's ``as_of - N days <= t < as_of``; the
#: data's timestamps have millisecond resolution, so ``now = as_of - 1 µs`` makes both the same set.
_EPSILON = timedelta(microseconds=1)


def _runtime(url: str) -> Any:
    from rapport.config import Settings
    from rapport.runtime import build_runtime

    settings = Settings(database_url=url, secret_key="bench-secret", log_level="WARNING", db_pool_size=2)
    return build_runtime(settings)


def load_rapport(url: str, profiles_csv: str, events_jsonl: str) -> dict[str, Any]:
    """Child: migrate, import both files through Rapport's importer, recompute computed traits."""
    from rapport.accounts import service as accounts_service
    from rapport.collect.import_files import import_file
    from rapport.collect.importer import import_profile_rows
    from rapport.db import migrate
    from rapport.kit.logs import configure_logging
    from rapport.process import traits_service
    from rapport.synth.files import read_profiles_csv

    configure_logging(level="WARNING", json_lines=False)
    runtime = _runtime(url)
    migrate.upgrade(runtime.engine)
    with runtime.sessions() as db:
        workspace_id = int(accounts_service.create_workspace(db, name="Bench", slug="bench").id)
        db.commit()
    t0 = time.perf_counter()
    p = import_profile_rows(runtime, workspace_id=workspace_id, rows=read_profiles_csv(Path(profiles_csv)))
    # Events as `rapport import events` reads them (a reader process for a big file); profiles through
    # the CSV reader that keeps coordinates numbers, as the generator wrote them.
    e = import_file(runtime, workspace_id=workspace_id, path=Path(events_jsonl), kind="events")
    t1 = time.perf_counter()
    traits_service.recompute(runtime, workspace_id, batch_size=2000)
    t2 = time.perf_counter()
    sqlite = runtime.is_sqlite
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE" if sqlite else "VACUUM ANALYZE")
    runtime.close()
    if sqlite:  # fold the WAL into the file, so the cached copy is whole
        import sqlite3

        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.close()
    return {
        "workspace_id": workspace_id,
        "profiles": p.imported,
        "events": e.imported,
        "import_seconds": t1 - t0,
        "recompute_seconds": t2 - t1,
    }


def copy_store(source_url: str, target_url: str) -> dict[str, Any]:
    """Child: copy every table of a Rapport store (the importer's SQLite file) into a migrated PostgreSQL one.

    Faster than importing again; the rows are the ones Rapport's bulk path wrote (ids kept, sequences reset).
    """
    from sqlalchemy import create_engine, delete, func, insert, select, text

    from rapport.db import migrate
    from rapport.db.base import Base

    source, target = create_engine(source_url), create_engine(target_url)
    migrate.upgrade(target)
    started = time.perf_counter()
    rows = 0
    with source.connect() as src, target.begin() as dst:
        dst.execute(text("SET session_replication_role = replica"))  # no FK checks while copying
        for table in reversed(Base.metadata.sorted_tables):
            dst.execute(delete(table))
        for table in Base.metadata.sorted_tables:
            result = src.execution_options(stream_results=True, yield_per=5000).execute(select(table))
            for batch in result.mappings().partitions(5000):
                dst.execute(insert(table), [dict(r) for r in batch])
                rows += len(batch)
            if "id" in table.c:
                top = dst.execute(select(func.max(table.c.id))).scalar()
                if top is not None:
                    dst.execute(
                        text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
                        {"t": table.name, "v": top},
                    )
    with target.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    source.dispose()
    target.dispose()
    return {"rows": rows, "seconds": time.perf_counter() - started}


class _RapportStore:
    """One Rapport store holding the generated workspace: restored from the cache, imported when missing."""

    def __init__(self, ctx: Context, data: DataFiles, kind: str) -> None:
        self.ctx, self.kind = ctx, kind
        self.cache = OUT / "b4-cache" / f"{data.profiles}-s{ctx.seed}-v{CACHE_FORMAT}"
        self.cache.mkdir(parents=True, exist_ok=True)
        meta_file = self.cache / f"{kind}.json"
        if kind == "sqlite":
            cached = self.cache / "sqlite.db"
            if not meta_file.exists():
                self._import(data, f"sqlite:///{cached}", meta_file)
            target = ctx.out / "b4.db"
            shutil.copyfile(cached, target)
            self.url = f"sqlite:///{target}"
        else:
            server = ctx.pg_server()
            dump = self.cache / "postgresql.dump"
            self.url = server.create_database(_PG_DB)
            if meta_file.exists():
                started = time.perf_counter()
                _pg_tool("pg_restore", "--no-owner", "-j", "2", "-d", _libpq(self.url), str(dump))
                # a dump holds no planner statistics: gather them, as the import did before dumping (the store
                # the dump came from was measured with them, and a live database has autovacuum's)
                _pg_tool("vacuumdb", "--analyze", "--quiet", "-d", _libpq(self.url))
                ctx.log(
                    f"  restored the PostgreSQL store from {dump} (+ VACUUM ANALYZE) in "
                    f"{time.perf_counter() - started:.0f} s"
                )
            else:
                # the importer's rows, copied from the SQLite store (importing again would take ~3x longer)
                sqlite_meta = self.cache / "sqlite.json"
                if not sqlite_meta.exists():
                    self._import(data, f"sqlite:///{self.cache / 'sqlite.db'}", sqlite_meta)
                out = run_in_child(
                    f"{__name__}:copy_store",
                    source_url=f"sqlite:///{self.cache / 'sqlite.db'}",
                    target_url=self.url,
                )
                ctx.log(f"  copied {out['rows']:,} rows of the imported store in {out['seconds']:.0f} s")
                meta_file.write_text(sqlite_meta.read_text())
                _pg_tool("pg_dump", "-Fc", "-f", str(dump), _libpq(self.url))
        self.meta = json.loads(meta_file.read_text())
        self.workspace_id = int(self.meta["workspace_id"])
        self.runtime = _runtime(self.url)
        from rapport.db import migrate

        migrate.upgrade(self.runtime.engine)  # a cached store predating a migration catches up here

    def _import(self, data: DataFiles, url: str, meta_file: Path) -> None:
        self.ctx.log(f"  importing {data.profiles:,} profiles + {data.events:,} events into {self.kind} ...")
        out = run_in_child(
            f"{__name__}:load_rapport",
            url=url,
            profiles_csv=str(data.profiles_csv),
            events_jsonl=str(data.events_jsonl),
        )
        self.ctx.log(
            f"  imported in {out['import_seconds']:.0f} s, computed traits in {out['recompute_seconds']:.0f} s"
        )
        meta_file.write_text(json.dumps(out))

    def preview(self, text: str, now: datetime) -> tuple[int, list[int], float]:
        """Run the segments service's preview; return (count, sample ids, elapsed ms inside the service)."""
        from rapport.segments import service as segments_service

        with self.runtime.read_sessions() as db:
            out = segments_service.preview(db, workspace_id=self.workspace_id, text=text, ast=None, now=now)
        return out.count, [s.id for s in out.sample], out.elapsed_ms

    def close(self) -> None:
        self.runtime.close()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_tool(name: str, *args: str) -> None:
    from tests.support.pg import _pg_bin

    subprocess.run([str(_pg_bin() / name), *args], check=True, capture_output=True)


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Load the data into DuckDB and each Rapport store, then time every segment on each, alternating."""
    import duckdb

    data = ensure_data(ctx.size, ctx.seed, log=ctx.log)
    con = duckdb.connect(str(ctx.out / "b4.duckdb"))
    started = time.perf_counter()
    counts = load(con, data)
    load_s = time.perf_counter() - started
    ctx.log(
        f"  DuckDB loaded {counts['profiles']:,} profiles and {counts['events']:,} events in {load_s:.1f} s"
    )
    stores: dict[str, _RapportStore] = {}
    failed: dict[str, str] = {}
    for kind in ctx.stores:
        try:
            stores[kind] = _RapportStore(ctx, data, kind)
        except Exception as exc:  # one store failing must not hide the other's figures
            ctx.log(f"  B4 {kind} store failed: {exc}")
            failed[kind] = str(exc)[:300]
    as_of = data.spec.reference_date
    now = as_of - _EPSILON
    results: list[Result] = []
    try:
        for segment in SEGMENTS:
            results.extend(_run_segment(ctx, con, stores, failed, segment, as_of, now, load_s))
    finally:
        con.close()
        for store in stores.values():
            store.close()
    return results


def _run_segment(
    ctx: Context,
    con: Any,
    stores: dict[str, _RapportStore],
    failed: dict[str, str],
    segment: Segment,
    as_of: datetime,
    now: datetime,
    load_s: float,
) -> list[Result]:
    """Time one segment: DuckDB, then each store, ctx.runs times in turn."""
    reference = Measurement("DuckDB", "ms", higher_is_better=False)
    mine = {kind: Measurement("Rapport preview", "ms", higher_is_better=False) for kind in stores}
    count = -1
    got: dict[str, int] = {}
    errors: dict[str, str] = dict(failed)
    for _ in range(ctx.runs):
        t0 = time.perf_counter()
        count, sample = evaluate(con, segment, as_of)
        reference.values.append((time.perf_counter() - t0) * 1000)
        reference.extra["sample"] = sample
        for kind, store in stores.items():
            if kind in errors:
                continue
            try:
                t0 = time.perf_counter()
                got[kind], _ids, inside = store.preview(segment.text, now)
                mine[kind].values.append((time.perf_counter() - t0) * 1000)
                mine[kind].extra.setdefault("service_ms", []).append(inside)
            except Exception as exc:
                errors[kind] = f"{type(exc).__name__}: {exc}"[:300]
    reference.extra["count"] = count
    line = f"  {segment.name}: DuckDB {count:,} profiles, median {reference.median:.1f} ms"
    for kind in stores:
        if mine[kind].values:
            line += f"; {kind} {got.get(kind, -1):,} in {mine[kind].median:.1f} ms"
    ctx.log(line)
    if not ctx.stores:  # DuckDB alone: its figures as the row
        note = f"count {count:,}; DuckDB load {load_s:.1f} s"
        return [
            Result("B4", f"{TITLE}: {segment.name}", TARGET, status="reference only", store="duckdb",
                   measurement=reference, note=note)
        ]  # fmt: skip
    results: list[Result] = []  # one row per store, DuckDB (same run, same data) as its reference
    for kind in ctx.stores:
        title = f"{TITLE}: {segment.name}"
        if kind in errors:
            results.append(Result("B4", title, TARGET, status="failed", store=kind, note=errors[kind]))
            continue
        m = mine[kind]
        ok_count = got.get(kind) == count
        fast = m.median <= 3 * reference.median if kind == "sqlite" else m.median < 1000
        status = "ok" if ok_count and fast else ("failed" if not ok_count else "missed")
        note = f"count {got.get(kind, -1):,} (DuckDB {count:,}{'' if ok_count else ': MISMATCH'})"
        note += f"; `{segment.text}`"
        results.append(
            Result(
                "B4", title, TARGET, status=status, store=kind, measurement=m, reference=reference, note=note
            )
        )
    return results
