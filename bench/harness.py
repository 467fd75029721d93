"""What every workload shares: measurements over several runs, results with their reference and ratio."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


@dataclass
class Measurement:
    """Values of one quantity over several runs (throughput: higher is better)."""

    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        """Return the median of the runs."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """Return the smallest value."""
        return min(self.values)

    @property
    def high(self) -> float:
        """Return the largest value."""
        return max(self.values)


@dataclass
class Result:
    """One line of the results table: a workload on a store, its same-run reference and the target."""

    id: str
    title: str
    target: str
    status: str = "ok"  # ok | not available | not yet | failed
    store: str = ""
    measurement: Measurement | None = None
    reference: Measurement | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Return measurement / reference (medians), or None without both."""
        if not self.measurement or not self.reference or not self.measurement.values:
            return None
        if not self.reference.values or self.reference.median == 0:
            return None
        return self.measurement.median / self.reference.median


@dataclass
class Context:
    """What a workload is given: data size, seed, runs, durations, and where to put files."""

    size: int
    seed: int
    runs: int
    duration: float
    out: Path
    stores: tuple[str, ...] = ("sqlite", "postgresql")
    import_size: int = 0  # customers B3 imports; 0: all of ``size``
    log: Callable[[str], None] = print
    _pg: Any = None

    def pg_server(self) -> Any:
        """Return the run's throwaway PostgreSQL server (``bench.pgserver.PgServer``), started on first use."""
        if self._pg is None:
            from bench.pgserver import start_cluster

            self.log("starting a throwaway PostgreSQL cluster ...")
            self._pg = start_cluster()
        return self._pg

    def drop_store(self, *, path: Path | None = None, database: str = "") -> None:
        """Remove a workload's store once it is done with it: a SQLite file (with its WAL and shared
        memory) or a PostgreSQL database (left behind, it would be vacuumed in the background while the
        next workloads are measured on the same cluster)."""
        if path is not None:
            for name in (path.name, path.name + "-wal", path.name + "-shm"):
                (path.parent / name).unlink(missing_ok=True)
        elif database:
            self.pg_server().drop_database(database)

    def close(self) -> None:
        """Stop what the run started."""
        if self._pg is not None:
            self._pg.stop()
            self._pg = None


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_child(target: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh Python process and return its dict result.

    A fresh process per run makes peak RSS (added as ``rss_mb``) belong to that run alone.
    """
    payload = json.dumps({"target": target, "kwargs": kwargs})
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", payload],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"{target} failed: {lines[-1][:300] if lines else proc.returncode}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Return (seconds, result) of calling ``fn`` once."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result
