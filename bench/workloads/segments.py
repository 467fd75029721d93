"""B4, reference side: DuckDB loads the generated workspace and runs the reference segment of
BENCHMARKS.md and four variants as hand-written SQL (count + a 20-profile sample), timed over the runs.

These counts are the correctness oracle for Rapport's segment compiler; the Rapport side (the same
definitions compiled to SQLite and PostgreSQL) is added when the segment compiler lands.

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
from datetime import datetime
from typing import Any

from bench.data import DataFiles, ensure_data
from bench.harness import Context, Measurement, Result

TITLE = "segment count + 20-profile sample"
TARGET = "<= 3x DuckDB on SQLite; < 1 s on PostgreSQL; identical counts"


@dataclass(frozen=True)
class Segment:
    """A benchmark segment: its name, its definition in words, and the DuckDB SQL of its members."""

    name: str
    definition: str
    sql: str


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
    ),
    Segment(
        "v1 recent local buyers",
        "purchased at least once in the last 90 days AND city in (Leeds, York)",
        _segment_sql(("buys_90",), "buys_90 >= 1", city=True),
    ),
    Segment("v2 big spenders", "total spend > 500", _segment_sql(("spend",), "spend > 500")),
    Segment(
        "v3 engaged, lapsed",
        "email opened in the last 30 days AND NOT purchased in the last 90 days",
        _segment_sql(("opened_30", "buys_90"), "opened_30 > 0 AND buys_90 = 0"),
    ),
    Segment(
        "v4 footwear browse abandonment",
        "viewed a Footwear product in the last 30 days AND NOT purchased in the last 30 days",
        _segment_sql(("footwear_30", "buys_30"), "footwear_30 > 0 AND buys_30 = 0"),
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


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Load the data into DuckDB once, then time every segment ctx.runs times."""
    import duckdb

    data = ensure_data(ctx.size, ctx.seed, log=ctx.log)
    con = duckdb.connect(str(ctx.out / "b4.duckdb"))
    started = time.perf_counter()
    counts = load(con, data)
    load_s = time.perf_counter() - started
    ctx.log(
        f"  DuckDB loaded {counts['profiles']:,} profiles and {counts['events']:,} events in {load_s:.1f} s"
    )
    as_of = data.spec.reference_date
    results = []
    for segment in SEGMENTS:
        timing = Measurement("DuckDB", "ms", higher_is_better=False)
        count, sample = -1, list[str]()
        for _ in range(ctx.runs):
            t0 = time.perf_counter()
            count, sample = evaluate(con, segment, as_of)
            timing.values.append((time.perf_counter() - t0) * 1000)
        timing.extra["count"] = count
        timing.extra["sample"] = sample
        ctx.log(f"  {segment.name}: {count:,} profiles, median {timing.median:.1f} ms")
        results.append(
            Result(
                "B4",
                f"{TITLE}: {segment.name}",
                TARGET,
                status="reference only",
                store="duckdb",
                measurement=timing,
                note=f"count {count:,}; Rapport side arrives with the segment compiler; "
                f"DuckDB load {load_s:.1f} s",
            )
        )
    con.close()
    return results
