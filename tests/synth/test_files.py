"""Writing and reading the generated workspace as CSV and JSON Lines."""

from __future__ import annotations

from pathlib import Path

from rapport.synth.files import (
    read_jsonl,
    read_profiles_csv,
    write_jsonl,
    write_profiles_csv,
    write_workspace,
)
from rapport.synth.generator import SynthSpec, iter_events, iter_profiles


def test_write_workspace_round_trips(tmp_path: Path) -> None:
    spec = SynthSpec(profiles=120, seed=2, chunk_size=50)
    seen: list[tuple[int, int]] = []
    files = write_workspace(tmp_path, spec, progress=lambda p, e: seen.append((p, e)))
    events = list(iter_events(spec))
    assert files.profiles == 120 and files.events == len(events)
    assert [p for p, _ in seen] == [50, 100, 120] and seen[-1][1] == len(events)
    assert list(read_jsonl(files.events_jsonl)) == events
    assert list(read_profiles_csv(files.profiles_csv)) == list(iter_profiles(spec))


def test_single_writers_round_trip(tmp_path: Path) -> None:
    spec = SynthSpec(profiles=10, seed=9)
    assert write_jsonl(tmp_path / "e.jsonl", iter_events(spec)) > 10
    assert list(read_jsonl(tmp_path / "e.jsonl")) == list(iter_events(spec))
    assert write_profiles_csv(tmp_path / "p.csv", iter_profiles(spec)) == 10
    assert list(read_profiles_csv(tmp_path / "p.csv")) == list(iter_profiles(spec))
