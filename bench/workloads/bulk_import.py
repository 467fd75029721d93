"""B3: bulk import of the generated profiles (CSV) and events (JSONL) through Rapport's importer, against
raw DBAPI ``executemany`` of the same rows into the same tables, on SQLite and PostgreSQL.

Each run is a fresh process on a fresh migrated database, so its peak RSS is its own. Throughput is
events per second of the whole import (profiles + events): ``events / (profile seconds + event seconds)``.

The reference's run also times its ``executemany`` and commits alone, without the parsing: what the store
itself accepts of rows handed to it ready-made, the ceiling of any importer that writes these tables as
they are indexed. The note quotes it (B3's 200k events/s target is above it on the 2-core machines this
runs on: ``docs/decisions/0004-b3-import-target.md``).
"""

# ruff: noqa: S608  (fixed INSERT statements built from constant placeholders)
from __future__ import annotations

import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.data import DataFiles, ensure_data
from bench.harness import Context, Measurement, Result, run_in_child
from bench.store import open_runtime

TITLE = "bulk import profiles + events"
TARGET = ">= 200k events/s, < 500 MB RSS"
BATCH = 5000


def _new_workspace(runtime: Any) -> int:
    from rapport.accounts import service as accounts_service

    with runtime.sessions() as db:
        ws = accounts_service.create_workspace(db, name="Bench", slug="bench")
        db.commit()
        return int(ws.id)


def rapport_import(url: str, profiles_csv: str, events_jsonl: str) -> dict[str, Any]:
    """Child: import both files the way ``rapport import profiles|events`` does (file reading included,
    the runtime wired with every domain's processing hooks as the CLI wires it: computed traits, consent
    statements, segments, campaigns); return timings and counts."""
    from rapport.app import wire_runtime
    from rapport.collect.import_files import import_file
    from rapport.kit.logs import configure_logging

    configure_logging(level="WARNING", json_lines=False)
    runtime = wire_runtime(open_runtime(url))
    workspace_id = _new_workspace(runtime)
    t0 = time.perf_counter()
    p = import_file(runtime, workspace_id=workspace_id, path=Path(profiles_csv), kind="profiles")
    t1 = time.perf_counter()
    e = import_file(runtime, workspace_id=workspace_id, path=Path(events_jsonl), kind="events")
    t2 = time.perf_counter()
    runtime.close()
    return {
        "profile_seconds": t1 - t0,
        "event_seconds": t2 - t1,
        "profiles": p.imported,
        "events": e.imported,
        "failed": p.failed + e.failed,
    }


def _sqlite_time(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def raw_executemany(url: str, profiles_csv: str, events_jsonl: str) -> dict[str, Any]:
    """Child: the reference: parse the same files and executemany plain INSERTs, one commit per batch;
    events are linked to their profile by its user id (one query after the profiles, a dict per event)."""
    from rapport.db.engine import write_turn
    from rapport.synth.files import read_profiles_csv

    runtime = open_runtime(url)
    workspace_id = _new_workspace(runtime)
    sqlite = runtime.is_sqlite
    raw = runtime.engine.raw_connection()
    cur = raw.cursor()
    ph = "?" if sqlite else "%s"
    js = ph if sqlite else "%s::jsonb"
    conv = _sqlite_time if sqlite else datetime.fromisoformat
    now = conv(datetime.now(UTC).isoformat())
    import orjson

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    profile_sql = (
        "INSERT INTO profiles (workspace_id, traits, trait_times, email, phone, name, timezone, updated_at, "
        f"created_at) VALUES ({ph}, {js}, {js}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph})"
    )
    event_sql = (
        "INSERT INTO events (workspace_id, message_id, type, event, user_id, anonymous_id, profile_id, channel,"
        " timestamp, received_at, properties, traits, context, extra, source, state) VALUES "
        f"({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {js}, {js}, {js}, {js}, {ph}, {ph})"
    )

    store_seconds = 0.0  # the executemany and commits alone

    def flush(sql: str, batch: list[tuple[Any, ...]]) -> None:
        nonlocal store_seconds
        started = time.perf_counter()
        if sqlite:
            # Rapport's engine opens SQLite connections in autocommit mode (isolation_level=None) and
            # emits BEGIN itself; a raw connection must too, or every row would be its own transaction.
            # The store's write gate is taken as every writer of Rapport's takes it: the WAL checkpointer
            # (rapport.db.checkpoint) finishes its pass at the gate, and without it the log never
            # restarted (a million customers' reference filled the disk with its log).
            with write_turn(raw.driver_connection):
                cur.execute("BEGIN")
                cur.executemany(sql, batch)
                cur.execute("COMMIT")
        else:
            cur.executemany(sql, batch)
            raw.commit()
        store_seconds += time.perf_counter() - started
        batch.clear()

    t0 = time.perf_counter()
    batch: list[tuple[Any, ...]] = []
    n_profiles = 0
    for row in read_profiles_csv(Path(profiles_csv)):
        name = f"{row['first_name']} {row['last_name']}"
        batch.append(
            (workspace_id, dumps(row), "{}", row["email"], row["phone"], name, row["timezone"], now, now)
        )
        n_profiles += 1
        if len(batch) >= BATCH:
            flush(profile_sql, batch)
    if batch:
        flush(profile_sql, batch)
    t1 = time.perf_counter()
    # Each event carries its profile's id, as the importer writes it: three of the events table's indexes
    # cover only linked events (``profile_id IS NOT NULL``), so rows without it would skip most index work.
    user_id = "json_extract(traits, '$.user_id')" if sqlite else "traits->>'user_id'"
    cur.execute(f"SELECT {user_id}, id FROM profiles WHERE workspace_id = {ph}", (workspace_id,))
    profile_ids = dict(cur.fetchall())
    n_events = 0
    loads = orjson.loads  # the fastest parse: the reference is no slower than the importer's reader
    with Path(events_jsonl).open("rb") as src:
        for line in src:
            m = loads(line)
            ctx = m.get("context") or {}
            batch.append(
                (
                    workspace_id, m["messageId"], m["type"], m.get("event"), m.get("userId"),
                    m.get("anonymousId"), profile_ids.get(m.get("userId")), ctx.get("channel", "server"),
                    conv(m["timestamp"]), now,
                    dumps(m.get("properties") or {}), dumps(m.get("traits") or {}), dumps(ctx), "{}", "import", 1,
                )
            )  # fmt: skip
            n_events += 1
            if len(batch) >= BATCH:
                flush(event_sql, batch)
    if batch:
        flush(event_sql, batch)
    t2 = time.perf_counter()
    raw.close()
    runtime.close()
    return {
        "profile_seconds": t1 - t0,
        "event_seconds": t2 - t1,
        "profiles": n_profiles,
        "events": n_events,
        "failed": 0,
        "store_seconds": store_seconds,
    }


class _Store:
    """Fresh migrated databases of one kind, one per run."""

    def __init__(self, ctx: Context, kind: str) -> None:
        from rapport.db import migrate
        from rapport.db.engine import build_engine

        self.ctx, self.kind, self.n = ctx, kind, 0
        self.dir = ctx.out / "b3"
        self.dir.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite":
            self.template = self.dir / "template.db"
            self.template.unlink(missing_ok=True)
            url = f"sqlite:///{self.template}"
        else:
            self.server = ctx.pg_server()
            url = self.server.create_database("bench_b3_template")
        engine = build_engine(url)
        migrate.upgrade(engine)
        engine.dispose()

    def new_url(self) -> str:
        self.n += 1
        if self.kind == "sqlite":
            for old in self.dir.glob("run-*.db*"):
                old.unlink()
            target = self.dir / f"run-{self.n}.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        return str(self.server.create_database(f"bench_b3_run_{self.n}", template="bench_b3_template"))

    def cleanup(self) -> None:
        if self.kind == "sqlite":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            for k in range(1, self.n + 1):
                self.server.drop_database(f"bench_b3_run_{k}")
            self.server.drop_database("bench_b3_template")


def _available() -> bool:
    try:
        from rapport.collect import importer  # noqa: F401
    except ImportError:
        return False
    return True


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Run B3 on each store: the importer and the raw executemany reference, alternating, ctx.runs times."""
    if not _available():
        return [Result("B3", TITLE, TARGET, status="not available", note="rapport.collect.importer missing")]
    data: DataFiles = ensure_data(ctx.import_size or ctx.size, ctx.seed, log=ctx.log)
    results = []
    for kind in ctx.stores:
        try:
            results.append(_run_store(ctx, data, kind))
        except Exception as exc:  # one store failing must not hide the other's figures
            ctx.log(f"  B3 {kind} failed: {exc}")
            results.append(Result("B3", TITLE, TARGET, status="failed", store=kind, note=str(exc)[:300]))
    return results


def _run_store(ctx: Context, data: DataFiles, kind: str) -> Result:
    """Alternate the importer and the reference on fresh databases of one store."""
    store = _Store(ctx, kind)
    mine = Measurement("Rapport importer", "events/s")
    ref = Measurement("raw executemany", "events/s")
    profile_rates: list[float] = []
    ceiling: list[float] = []  # the reference's executemany and commits alone
    try:
        for run_no in range(ctx.runs):
            for target, m in ((rapport_import, mine), (raw_executemany, ref)):
                out = run_in_child(
                    f"{__name__}:{target.__name__}",
                    url=store.new_url(),
                    profiles_csv=str(data.profiles_csv),
                    events_jsonl=str(data.events_jsonl),
                )
                seconds = out["profile_seconds"] + out["event_seconds"]
                m.values.append(out["events"] / seconds)
                m.rss_mb = max(m.rss_mb or 0.0, out["rss_mb"])
                m.extra["events"] = out["events"]
                m.extra["failed"] = out["failed"]
                if m is mine:
                    profile_rates.append(out["profiles"] / out["profile_seconds"])
                else:
                    ceiling.append(out["events"] / out["store_seconds"])
                ctx.log(
                    f"  B3 {kind} run {run_no + 1}/{ctx.runs} {m.label}: {out['events']:,} events, "
                    f"{seconds:.1f} s, {out['events'] / seconds:,.0f} events/s, RSS {out['rss_mb']:.0f} MB"
                )
    finally:
        store.cleanup()
    note = f"{data.profiles:,} profiles + {data.events:,} events"
    if profile_rates:
        note += f"; importer profiles {min(profile_rates):,.0f}-{max(profile_rates):,.0f}/s"
    if ceiling:
        note += (
            f"; the store alone (the reference's executemany + commits, parsing excluded) "
            f"{statistics.median(ceiling):,.0f} events/s ({min(ceiling):,.0f}-{max(ceiling):,.0f})"
        )
    if mine.extra.get("failed"):
        note += f"; {mine.extra['failed']} rows refused"
    return Result("B3", TITLE, TARGET, store=kind, measurement=mine, reference=ref, note=note)
