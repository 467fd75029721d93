"""The benchmark data: the seeded synthetic workspace written once per (size, seed) under bench/out/."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.harness import OUT
from rapport.synth.files import write_workspace
from rapport.synth.generator import SynthSpec

#: Bump when the generator's output changes, so cached files are rebuilt.
FORMAT = 1


@dataclass(frozen=True)
class DataFiles:
    """The generated files of one workspace."""

    directory: Path
    profiles_csv: Path
    events_jsonl: Path
    profiles: int
    events: int
    spec: SynthSpec


def _part(directory: str, profiles: int, seed: int, first: int, stop: int, suffix: str) -> tuple[int, int]:
    files = write_workspace(
        Path(directory),
        SynthSpec(profiles=profiles, seed=seed),
        first=first,
        stop=stop,
        suffix=suffix,
        header=False,
    )
    return files.profiles, files.events


def ensure_data(size: int, seed: int, *, log: object = print, workers: int = 2) -> DataFiles:
    """Return the workspace files of ``size`` customers, generating them (in parallel parts) if missing."""
    spec = SynthSpec(profiles=size, seed=seed)
    directory = OUT / "data" / f"{size}-s{seed}-v{FORMAT}"
    marker = directory / "done.json"
    if marker.exists():
        meta = json.loads(marker.read_text())
        return DataFiles(
            directory, directory / "profiles.csv", directory / "events.jsonl", meta["profiles"],
            meta["events"], spec,
        )  # fmt: skip
    if callable(log):
        log(f"generating {size:,} customers (seed {seed}) into {directory} ...")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    started = time.perf_counter()
    parts = max(1, min(workers, size // 5000 or 1))
    bounds = [size * k // parts for k in range(parts + 1)]
    with ProcessPoolExecutor(parts) as pool:
        futures = [
            pool.submit(_part, str(directory), size, seed, bounds[k], bounds[k + 1], f".part{k}")
            for k in range(parts)
        ]
        counts = [f.result() for f in futures]
    profiles_csv = directory / "profiles.csv"
    events_jsonl = directory / "events.jsonl"
    from rapport.synth.generator import PROFILE_COLUMNS

    with profiles_csv.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(PROFILE_COLUMNS) + "\r\n")
        for k in range(parts):
            part = directory / f"profiles.part{k}.csv"
            with part.open(encoding="utf-8", newline="") as src:
                shutil.copyfileobj(src, out)
            part.unlink()
    with events_jsonl.open("wb") as out_b:
        for k in range(parts):
            part = directory / f"events.part{k}.jsonl"
            with part.open("rb") as src_b:
                shutil.copyfileobj(src_b, out_b)
            part.unlink()
    profiles = sum(c[0] for c in counts)
    events = sum(c[1] for c in counts)
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({"profiles": profiles, "events": events, "seconds": round(seconds, 1)}))
    if callable(log):
        log(f"generated {profiles:,} profiles and {events:,} events in {seconds:.1f} s")
    return DataFiles(directory, profiles_csv, events_jsonl, profiles, events, spec)
