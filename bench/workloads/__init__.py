"""The workloads of ../shared/BENCHMARKS.md, one module each; ``CATALOGUE`` lists them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """A benchmark of the table: its id, what it measures, its same-run reference and target."""

    id: str
    title: str
    reference: str
    target: str
    module: str | None  # None: arrives with a later feature ("not yet")


CATALOGUE: tuple[Workload, ...] = (
    Workload(
        "B1",
        "HTTP ingest, single ~300-byte events (/v1/track)",
        "null FastAPI handler, same bodies",
        ">= 5k events/s, p99 < 25 ms, >= 0.6x null handler",
        "bench.workloads.http_ingest",
    ),
    Workload(
        "B2",
        "HTTP ingest, /v1/batch of 100 events",
        "null handler on the same bodies",
        ">= 50k events/s",
        "bench.workloads.http_ingest",
    ),
    Workload(
        "B3",
        "bulk import profiles + events (CSV/JSONL) through the importer",
        "raw executemany into the same store",
        ">= 200k events/s, < 500 MB RSS",
        "bench.workloads.bulk_import",
    ),
    Workload(
        "B4",
        "segment count + 20-profile sample, reference segment and 4 variants",
        "DuckDB, hand-written SQL on the same data",
        "<= 3x DuckDB on SQLite; < 1 s on PostgreSQL; identical counts",
        "bench.workloads.segments",
    ),
    Workload(
        "B5",
        "real time: event -> segment entry -> triggered message at 1k events/s, 50 triggers",
        "-",
        "p99 < 100 ms",
        "bench.workloads.realtime",
    ),
    Workload(
        "B6",
        "scores for all profiles: RFM, BG/NBD + Gamma-Gamma CLV, P(alive), propensity",
        "-",
        "RFM < 2 s; all < 60 s; < 2 GB",
        "bench.workloads.scores",
    ),
    Workload(
        "B7",
        "render + MIME-build a 2 KB personalised email with unsubscribe headers",
        "bare python-liquid render of the same template",
        ">= 5k messages/s per core",
        "bench.workloads.email_render",
    ),
    Workload(
        "B8",
        "deliver a campaign to a local SMTP sink",
        "smtplib sending prebuilt messages",
        ">= 2k messages/s; exactly all received",
        "bench.workloads.delivery",
    ),
)
