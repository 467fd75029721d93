"""Write and read the generated workspace as files: profiles as CSV, messages as JSON Lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapport.synth.generator import PROFILE_COLUMNS, SynthSpec, iter_chunks

_FLOAT_COLUMNS = frozenset({"latitude", "longitude"})


@dataclass(frozen=True)
class WorkspaceFiles:
    """Where a generated workspace was written, and how many rows each file holds."""

    profiles_csv: Path
    events_jsonl: Path
    profiles: int
    events: int


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write one compact JSON object per line; return the number of lines."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False))
            out.write("\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON Lines file, skipping blank lines."""
    with path.open(encoding="utf-8") as src:
        for line in src:
            if line.strip():
                yield json.loads(line)


def write_profiles_csv(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write profile rows as CSV with a header of ``PROFILE_COLUMNS``; None becomes an empty cell."""
    n = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=PROFILE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def read_profiles_csv(path: Path) -> Iterator[dict[str, Any]]:
    """Yield profile rows from CSV: empty cells become None, coordinates floats."""
    with path.open(encoding="utf-8", newline="") as src:
        for raw in csv.DictReader(src):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if value == "" or value is None:
                    row[key] = None
                elif key in _FLOAT_COLUMNS:
                    row[key] = float(value)
                else:
                    row[key] = value
            yield row


def write_workspace(
    directory: Path,
    spec: SynthSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
    first: int = 0,
    stop: int | None = None,
    suffix: str = "",
    header: bool = True,
) -> WorkspaceFiles:
    """Generate ``spec`` into ``directory``/profiles{suffix}.csv and events{suffix}.jsonl in one pass.

    ``progress(profiles_done, events_done)`` is called after each chunk; ``first``/``stop`` write a part
    of the workspace (customers ``first`` to ``stop - 1``), ``header=False`` leaves out the CSV header.
    """
    directory.mkdir(parents=True, exist_ok=True)
    profiles_path = directory / f"profiles{suffix}.csv"
    events_path = directory / f"events{suffix}.jsonl"
    n_profiles = n_events = 0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with (
        profiles_path.open("w", encoding="utf-8", newline="") as p_out,
        events_path.open("w", encoding="utf-8") as e_out,
    ):
        writer = csv.DictWriter(p_out, fieldnames=PROFILE_COLUMNS, extrasaction="ignore")
        if header:
            writer.writeheader()
        for chunk in iter_chunks(spec, first=first, stop=stop):
            writer.writerows(chunk.profiles)
            e_out.write("\n".join(dumps(e) for e in chunk.events))
            if chunk.events:
                e_out.write("\n")
            n_profiles += len(chunk.profiles)
            n_events += len(chunk.events)
            if progress:
                progress(n_profiles, n_events)
    return WorkspaceFiles(profiles_path, events_path, n_profiles, n_events)
