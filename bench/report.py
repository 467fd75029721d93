"""Print the results table and append it, dated and with the machine, to bench/RESULTS.md."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.harness import ROOT, Measurement, Result

RESULTS = ROOT / "bench" / "RESULTS.md"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit.endswith("/s") or value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _spread(m: Measurement | None) -> str:
    if not m or not m.values:
        return "-"
    return f"{_num(m.median, m.unit)} {m.unit} ({_num(m.low, m.unit)}–{_num(m.high, m.unit)})"


def _latency(m: Measurement | None) -> str:
    if not m or m.p50_ms is None:
        return "-"
    return f"{m.p50_ms:.1f} / {m.p99_ms:.1f} ms"


def _rss(m: Measurement | None) -> str:
    return "-" if not m or m.rss_mb is None else f"{m.rss_mb:,.0f} MB"


def _ratio(r: Result) -> str:
    ratio = r.ratio
    return "-" if ratio is None else f"{ratio:.2f}x"


def rows(results: list[Result]) -> list[list[str]]:
    """Return the table's cells, one list per result."""
    out = []
    for r in results:
        m, ref = r.measurement, r.reference
        out.append(
            [
                r.id,
                r.title,
                r.store or "-",
                r.status,
                _spread(m),
                _latency(m),
                _rss(m),
                (ref.label + ": " + _spread(ref)) if ref and ref.values else "-",
                _ratio(r),
                r.target,
                r.note,
            ]
        )
    return out


HEADERS = [
    "id",
    "workload",
    "store",
    "status",
    "median (min–max)",
    "p50 / p99",
    "peak RSS",
    "same-run reference",
    "ratio",
    "target",
    "notes",
]


def print_table(results: list[Result], console: Console) -> None:
    """Print the results as a rich table."""
    table = Table(title="Rapport benchmarks", show_lines=False)
    for h in HEADERS:
        table.add_column(h, overflow="fold")
    for cells in rows(results):
        table.add_row(*cells)
    console.print(table)


def append_results(
    results: list[Result], *, size: int, seed: int, runs: int, machine: dict[str, str], path: Path = RESULTS
) -> None:
    """Append a dated section (machine line + table) to RESULTS.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        f"## {when} — {size:,} profiles, seed {seed}, {runs} runs",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for cells in rows(results):
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    if not path.exists():
        path.write_text(
            "# Benchmark results\n\nAppended by `python -m bench run` (see README.md). Each figure is the median "
            "(min–max) of the runs; the ratio is median / median of the same-run reference.\n"
        )
    with path.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
