"""``python -m bench run --size N [--only B1,B2] [--runs 5]``: run the workloads, print, record;
``python -m bench store --size N``: build the cached store B4 and B6 read, ahead of a run."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.harness import OUT, Context, Result
from bench.machine import machine_info
from bench.report import append_results, print_table
from bench.workloads import CATALOGUE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Rapport benchmarks (bench/README.md)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the workloads that exist and append the results to RESULTS.md")
    run.add_argument("--size", type=int, default=10_000, help="profiles in the generated workspace")
    run.add_argument("--only", default="", help="comma-separated workload ids, e.g. B1,B3")
    run.add_argument("--runs", type=int, default=5, help="runs per workload (>= 5 for recorded figures)")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--duration", type=float, default=None, help="seconds of HTTP load per run")
    run.add_argument("--import-size", type=int, default=None,
                     help="customers B3 imports (default --size; a prefix of the same workspace)")  # fmt: skip
    run.add_argument("--stores", default="sqlite,postgresql", help="stores for storage workloads")
    run.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    run.add_argument("--results", type=Path, default=None, help="append to this file instead of RESULTS.md")
    store = sub.add_parser(
        "store", help="build the cached Rapport store of a size ahead of a run (B4 and B6 read it)"
    )
    store.add_argument("--size", type=int, default=10_000, help="profiles in the generated workspace")
    store.add_argument("--seed", type=int, default=7)
    store.add_argument("--stores", default="sqlite,postgresql", help="which caches to build")
    return parser


def build_store(args: argparse.Namespace, console: Console) -> int:
    """Build (or find) the cached SQLite store and PostgreSQL dump of ``--size`` customers."""
    from bench import store
    from bench.data import ensure_data

    with tempfile.TemporaryDirectory(prefix="run-", dir=OUT) as tmp:
        ctx = Context(size=args.size, seed=args.seed, runs=1, duration=0.0, out=Path(tmp),
                      log=lambda msg: console.print(f"[dim]{msg}[/dim]"))  # fmt: skip
        started = time.perf_counter()
        try:
            data = ensure_data(args.size, args.seed, log=ctx.log)
            kinds = [s.strip() for s in args.stores.split(",") if s.strip()]
            if "sqlite" in kinds:
                path, facts = store.sqlite_store(ctx, data)
                console.print(f"SQLite store {path}: {facts}")
            if "postgresql" in kinds:
                copy = store.postgresql_copy(ctx, data, "bench_store")
                copy.drop(ctx)
                console.print(f"PostgreSQL dump cached beside it: {copy.facts}")
        finally:
            ctx.close()
    console.print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark command line."""
    args = _parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=220)
    if args.command == "store":
        return build_store(args, console)
    only = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    duration = args.duration if args.duration is not None else (3.0 if args.size <= 20_000 else 10.0)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="run-", dir=OUT) as tmp:
        ctx = Context(
            size=args.size,
            seed=args.seed,
            runs=args.runs,
            duration=duration,
            out=Path(tmp),
            stores=tuple(s.strip() for s in args.stores.split(",") if s.strip()),
            import_size=min(args.import_size or args.size, args.size),
            log=lambda msg: console.print(f"[dim]{msg}[/dim]"),
        )
        results: list[Result] = []
        done_modules: set[str] = set()
        started = time.perf_counter()
        try:
            for w in CATALOGUE:
                if only and w.id not in only:
                    continue
                if w.module is None:
                    results.append(Result(w.id, w.title, w.target, status="not yet", note="arrives later"))
                    continue
                if w.module in done_modules:
                    continue
                done_modules.add(w.module)
                wanted = {x.id for x in CATALOGUE if x.module == w.module and (not only or x.id in only)}
                console.rule(f"{', '.join(sorted(wanted))}: {w.title}")
                module = importlib.import_module(w.module)
                try:
                    results.extend(module.run(ctx, wanted))
                except Exception as exc:  # a failed workload must not hide the others' results
                    console.print_exception(max_frames=5)
                    results.append(Result(w.id, w.title, w.target, status="failed", note=str(exc)[:200]))
            pg_version = ctx._pg.version() if ctx._pg is not None else None
        finally:
            ctx.close()
    print_table(results, console)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    if not args.no_record:
        machine = machine_info(pg_version)
        append_results(results, size=args.size, seed=args.seed, runs=args.runs, machine=machine,
                       **({"path": args.results} if args.results else {}))  # fmt: skip
        console.print(f"appended to {args.results or 'bench/RESULTS.md'}")
    return 0 if all(r.status != "failed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
