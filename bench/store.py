"""The benchmarks' Rapport store: the generated workspace imported once through Rapport's own bulk path.

Built once per (size, seed) into a SQLite file under ``bench/out/stores/`` and reused by the workloads that
read a populated workspace (B4 segments, B6 scores): profiles from ``profiles.csv`` (the CSV reader that keeps
coordinates numbers), events from ``events.jsonl`` through ``import_file`` (the path of ``rapport import
events``, with its reader process), then the computed-trait recompute (``rapport traits recompute``) that
fills ``total_spend`` and the other built-ins (no ANALYZE: see :func:`build`). A million customers take tens of minutes, so
the build is cached; a schema change needs no rebuild (each copy is migrated to head when opened; a table
that a migration added to an already applied revision, as 0008 added ``profile_scores`` empty, is created in
each copy by :func:`add_missing_tables`), a change of what the store holds bumps ``STORE_FORMAT``.

PostgreSQL gets the same rows: every table is copied from the SQLite file with ``COPY`` (ids kept, sequences
reset, then VACUUM ANALYZE), and the result is cached as a ``pg_dump`` that later runs restore (and analyse:
a dump carries no planner statistics). Workloads get their own copy (a file, a database) and drop it after,
so a run that writes (B6 stores scores) never changes the cached store.
"""

# ruff: noqa: S608  (COPY/SELECT statements over the models' own table and column names)
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import DataFiles
from bench.harness import OUT, Context, run_in_child

#: Bump when what the store holds changes (importer semantics, recompute), so cached stores are rebuilt.
STORE_FORMAT = 2
SLUG = "bench"
COPY_BATCH = 20_000


@dataclass(frozen=True)
class StoreCopy:
    """A workload's own copy of the store: its URL, the build's facts, and how to drop it."""

    url: str
    facts: dict[str, Any]
    kind: str
    path: Path | None = None  # SQLite: the copied file
    database: str = ""  # PostgreSQL: the database name

    @property
    def workspace_id(self) -> int:
        return int(self.facts["workspace_id"])

    def drop(self, ctx: Context) -> None:
        """Remove the copy (a big file or database) once the workload is done with it."""
        ctx.drop_store(path=self.path, database=self.database)


def open_runtime(url: str) -> Any:
    """A runtime over ``url`` as the benchmarks' children use it (quiet logs, a small pool)."""
    from rapport.config import Settings
    from rapport.runtime import build_runtime

    settings = Settings(database_url=url, secret_key="bench-secret", log_level="WARNING", db_pool_size=2)
    return build_runtime(settings)


def build(url: str, profiles_csv: str, events_jsonl: str) -> dict[str, Any]:
    """Child: migrate ``url``, import both files through Rapport's importer, recompute computed traits."""
    from rapport.accounts import service as accounts_service
    from rapport.collect.import_files import import_file
    from rapport.collect.importer import import_profile_rows
    from rapport.db import migrate
    from rapport.kit.logs import configure_logging
    from rapport.process import traits_service
    from rapport.synth.files import read_profiles_csv

    configure_logging(level="WARNING", json_lines=False)
    runtime = open_runtime(url)
    migrate.upgrade(runtime.engine)
    with runtime.sessions() as db:
        workspace_id = int(accounts_service.create_workspace(db, name="Bench", slug=SLUG).id)
        db.commit()
    t0 = time.perf_counter()
    p = import_profile_rows(runtime, workspace_id=workspace_id, rows=read_profiles_csv(Path(profiles_csv)))
    t1 = time.perf_counter()
    e = import_file(runtime, workspace_id=workspace_id, path=Path(events_jsonl), kind="events")
    t2 = time.perf_counter()
    traits_service.recompute(runtime, workspace_id, batch_size=2000)
    t3 = time.perf_counter()
    # No ANALYZE: Rapport never runs it on SQLite (queries are shaped for a planner without statistics,
    # rapport.db.planner), so the store is measured as a deployment would run it.
    runtime.close()
    raw = sqlite3.connect(url.removeprefix("sqlite:///"))  # fold the WAL into the file: the cache is whole
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    return {
        "workspace_id": workspace_id,
        "profiles": p.imported,
        "events": e.imported,
        "profile_seconds": round(t1 - t0, 1),
        "event_seconds": round(t2 - t1, 1),
        "import_seconds": round(t2 - t0, 1),
        "recompute_seconds": round(t3 - t2, 1),
    }


def copy_to_postgresql(sqlite_path: str, url: str) -> dict[str, Any]:
    """Child: migrate ``url`` and COPY every table's rows from the SQLite store into it (ids kept)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from rapport.db import migrate
    from rapport.db.base import Base
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
        pg.execute("SET session_replication_role = replica")  # no FK checks or triggers while copying
        for table in reversed(Base.metadata.sorted_tables):
            pg.execute(f'DELETE FROM "{table.name}"')  # rows the migrations seeded
        for table in Base.metadata.sorted_tables:
            columns = [r[1] for r in src.execute(f'PRAGMA table_info("{table.name}")')]
            if not columns:  # a table the cached store predates (see add_missing_tables): nothing to copy
                continue
            names = ", ".join(f'"{c}"' for c in columns)
            order = " ORDER BY id" if "id" in columns else ""
            n = 0
            cursor = src.execute(f'SELECT {names} FROM "{table.name}"{order}')
            with pg.cursor().copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                while rows := cursor.fetchmany(COPY_BATCH):
                    for row in rows:
                        copy.write_row(row)
                    n += len(rows)
            if "id" in columns and n:
                pg.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                    f'(SELECT max(id) FROM "{table.name}"))'
                )
            copied[table.name] = n
        pg.commit()
        pg.autocommit = True
        pg.execute("VACUUM ANALYZE")
    src.close()
    return {"rows": sum(copied.values()), "seconds": time.perf_counter() - started}


def add_missing_tables(url: str) -> list[str]:
    """Create the models' tables a cached store lacks (empty, with their indexes); return their names.

    Migration 0008 was an empty placeholder when the stores of format 2 were built and now creates
    ``profile_scores``: those stores say they are at head but lack it. Nothing is lost by creating it
    empty, since the stores never held scores (0008 only moves existing score keys)."""
    from sqlalchemy import inspect

    import rapport.models  # noqa: F401  (every model's table on Base.metadata)
    from rapport.db.base import Base
    from rapport.db.engine import build_engine

    engine = build_engine(url, pool_size=1)
    try:
        present = set(inspect(engine).get_table_names())
        missing = [t for t in Base.metadata.sorted_tables if t.name not in present]
        Base.metadata.create_all(engine, tables=missing)
        return [t.name for t in missing]
    finally:
        engine.dispose()


def _directory(data: DataFiles) -> Path:
    directory = OUT / "stores" / f"{data.profiles}-s{data.spec.seed}-v{STORE_FORMAT}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def sqlite_store(ctx: Context, data: DataFiles) -> tuple[Path, dict[str, Any]]:
    """Return the cached SQLite store and its build facts, building it when missing."""
    directory = _directory(data)
    path, marker = directory / "sqlite.db", directory / "sqlite.json"
    if marker.exists() and path.exists():
        return path, dict(json.loads(marker.read_text()))
    for old in directory.glob("sqlite.db*"):
        old.unlink()
    ctx.log(
        f"  importing {data.profiles:,} customers and {data.events:,} events into {path} through Rapport's "
        "importer (once; cached) ..."
    )
    facts = run_in_child(
        f"{__name__}:build",
        url=f"sqlite:///{path}",
        profiles_csv=str(data.profiles_csv),
        events_jsonl=str(data.events_jsonl),
    )
    ctx.log(
        f"  imported profiles in {facts['profile_seconds']:.0f} s, events in {facts['event_seconds']:.0f} s, "
        f"computed traits in {facts['recompute_seconds']:.0f} s"
    )
    marker.write_text(json.dumps(facts))
    return path, facts


def sqlite_copy(ctx: Context, data: DataFiles, name: str) -> StoreCopy:
    """A copy of the SQLite store in the run's directory, for one workload."""
    source, facts = sqlite_store(ctx, data)
    target = ctx.out / f"{name}.db"
    shutil.copyfile(source, target)
    add_missing_tables(f"sqlite:///{target}")
    return StoreCopy(f"sqlite:///{target}", facts, "sqlite", path=target)


def postgresql_copy(ctx: Context, data: DataFiles, database: str) -> StoreCopy:
    """A database of the run's cluster holding the store: restored from the cached dump, or copied from the
    SQLite store (and dumped for the next run)."""
    directory = _directory(data)
    dump, marker = directory / "postgresql.dump", directory / "postgresql.json"
    server = ctx.pg_server()
    url = server.create_database(database)
    started = time.perf_counter()
    if marker.exists() and dump.exists():
        _pg_tool("pg_restore", "--no-owner", "-j", "2", "-d", _libpq(url), str(dump))
        add_missing_tables(url)
        _pg_tool("vacuumdb", "--analyze", "--quiet", "-d", _libpq(url))
        ctx.log(f"  restored the PostgreSQL store from {dump} (+ VACUUM ANALYZE) in {_since(started)}")
    else:
        source, facts = sqlite_store(ctx, data)
        out = run_in_child(f"{__name__}:copy_to_postgresql", sqlite_path=str(source), url=url)
        ctx.log(
            f"  copied {out['rows']:,} rows of the SQLite store into PostgreSQL in {out['seconds']:.0f} s"
        )
        _pg_tool("pg_dump", "-Fc", "-f", str(dump), _libpq(url))
        marker.write_text(json.dumps(facts))
    return StoreCopy(url, dict(json.loads(marker.read_text())), "postgresql", database=database)


def store_copy(ctx: Context, data: DataFiles, kind: str, name: str) -> StoreCopy:
    """The workload's own copy of the store on ``kind`` (sqlite or postgresql), named ``name``."""
    return sqlite_copy(ctx, data, name) if kind == "sqlite" else postgresql_copy(ctx, data, f"bench_{name}")


def _since(started: float) -> str:
    return f"{time.perf_counter() - started:.0f} s"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_tool(name: str, *args: str) -> None:
    from tests.support.pg import _pg_bin

    subprocess.run([str(_pg_bin() / name), *args], check=True, capture_output=True)
