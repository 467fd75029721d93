"""B4: the reference segment of BENCHMARKS.md and four variants, count + a 20-profile sample, timed over
the runs: Rapport's segments service (``preview``) on SQLite and PostgreSQL against DuckDB running the same
definitions as hand-written SQL on the same data.

DuckDB's counts are the correctness oracle: Rapport's must be identical, or the row fails. A PostgreSQL store
restored from the cached dump gets ``VACUUM ANALYZE`` before it is measured: a dump carries no planner
statistics (the store it was dumped from had them), and without them PostgreSQL takes every table for a few
rows. Rapport's store is the benchmarks' shared one (:mod:`bench.store`): loaded through Rapport's own bulk
path (the importer, then the computed-trait recompute that fills ``total_spend``) into SQLite once per
(size, seed), copied row for row into PostgreSQL and cached; this workload measures its own copy of it,
migrated to head (a schema change needs no re-import), and drops the copy after.

Semantics, as of the data's reference date (the end of the generated year, 2026-11-01 by default):
"purchase" is an ``order_completed`` event (online or in store), "spend" is the sum of its ``total`` over
the whole history, windows are ``[as_of - N days, as_of)``, and anonymous events count for the customer
their ``anonymousId`` was later identified as. Each query is written the way one would by hand for DuckDB:
one pass over the relevant events with filtered per-customer aggregates, joined to the profiles; the count
and the 20-profile sample come from the same statement (``count(*) OVER ()``).
"""

# ruff: noqa: S608  (hand-written benchmark SQL over fixed literals, no user input)
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bench import store as bench_store
from bench.data import DataFiles, ensure_data
from bench.harness import Context, Measurement, Result

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


#: Windows in the language are ``now - N days < t <= now``, DuckDB's ``as_of - N days <= t < as_of``; the
#: data's timestamps have millisecond resolution, so ``now = as_of - 1 µs`` makes both the same set.
_EPSILON = timedelta(microseconds=1)


class _RapportStore:
    """The workload's copy of the benchmark store (:mod:`bench.store`) on one database."""

    def __init__(self, ctx: Context, data: DataFiles, kind: str) -> None:
        self.ctx, self.kind = ctx, kind
        self.copy = bench_store.store_copy(ctx, data, kind, "b4")
        self.meta = self.copy.facts
        self.workspace_id = self.copy.workspace_id
        self.runtime = bench_store.open_runtime(self.copy.url)
        from rapport.db import migrate

        migrate.upgrade(self.runtime.engine)  # a cached store predating a migration catches up here

    def preview(self, text: str, now: datetime) -> tuple[int, list[int], float]:
        """Run the segments service's preview; return (count, sample ids, elapsed ms inside the service)."""
        from rapport.segments import service as segments_service

        with self.runtime.read_sessions() as db:
            out = segments_service.preview(db, workspace_id=self.workspace_id, text=text, ast=None, now=now)
        return out.count, [s.id for s in out.sample], out.elapsed_ms

    def close(self) -> None:
        self.runtime.close()
        self.copy.drop(self.ctx)


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
