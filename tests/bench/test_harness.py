"""The benchmark harness at a tiny size: it runs, prints, records, and its DuckDB oracle is right."""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from bench.__main__ import main
from bench.data import DataFiles, ensure_data
from bench.workloads.segments import SEGMENTS, evaluate, load

from rapport.synth.files import read_jsonl, read_profiles_csv


def test_harness_runs_workloads_and_appends_results(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    code = main(["run", "--size", "300", "--runs", "1", "--only", "B3,B4,B7", "--stores", "sqlite",
                 "--results", str(results)])  # fmt: skip
    assert code == 0
    text = results.read_text()
    assert "300 profiles, seed 7, 1 runs" in text and "Machine: cores" in text and "sqlite" in text
    rows = [line for line in text.splitlines() if line.startswith("| B")]
    by_id = defaultdict(list)
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        by_id[cells[0]].append(cells)
    assert [c[3] for c in by_id["B3"]] == ["ok"]
    assert "events/s" in by_id["B3"][0][4] and "raw executemany" in by_id["B3"][0][7]
    ceiling = re.search(r"the store alone \(.*?\) ([\d,]+) events/s", by_id["B3"][0][10])
    assert ceiling is not None and int(ceiling.group(1).replace(",", "")) > 0
    assert len(by_id["B4"]) == 5 and all("count" in c[10] for c in by_id["B4"])
    assert "B6" not in by_id  # only the workloads asked for run
    assert (
        by_id["B7"][0][3] in ("ok", "reference only") and "renders/s" in by_id["B7"][0][7] + by_id["B7"][0][4]
    )


def _python_oracle(data: DataFiles) -> dict[str, int]:
    """Evaluate the five segments in plain Python, independently of the SQL."""
    as_of = data.spec.reference_date
    iso = lambda days: (as_of - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731
    end = as_of.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    d90, d30 = iso(90), iso(30)
    events = list(read_jsonl(data.events_jsonl))
    alias = {e["anonymousId"]: e["userId"] for e in events if e["type"] == "identify"}
    buys90: dict[str, int] = defaultdict(int)
    buys30: set[str] = set()
    spend: dict[str, float] = defaultdict(float)
    opened30: set[str] = set()
    footwear30: set[str] = set()
    for e in events:
        user = e.get("userId") or alias.get(e.get("anonymousId", ""))
        if user is None:
            continue
        ts, name = e["timestamp"], e.get("event")
        if name == "order_completed":
            spend[user] += e["properties"]["total"]
            if d90 <= ts < end:
                buys90[user] += 1
            if d30 <= ts < end:
                buys30.add(user)
        elif name == "email_opened" and d30 <= ts < end:
            opened30.add(user)
        elif name == "product_viewed" and d30 <= ts < end and e["properties"]["category"] == "Footwear":
            footwear30.add(user)
    local = {p["user_id"] for p in read_profiles_csv(data.profiles_csv) if p["city"] in ("Leeds", "York")}
    return {
        "reference": len({u for u in local if buys90[u] >= 3 and spend[u] > 200 and u in opened30}),
        "v1 recent local buyers": len({u for u in local if buys90[u] >= 1}),
        "v2 big spenders": len({u for u, s in spend.items() if s > 500}),
        "v3 engaged, lapsed": len({u for u in opened30 if buys90[u] == 0}),
        "v4 footwear browse abandonment": len(footwear30 - buys30),
    }


@pytest.mark.parametrize("size", [3000])
def test_duckdb_segments_agree_with_an_independent_python_evaluation(size: int, tmp_path: Path) -> None:
    data = ensure_data(size, 7, log=None)
    con = duckdb.connect(str(tmp_path / "b4.duckdb"))
    counts = load(con, data)
    assert counts == {"profiles": data.profiles, "events": data.events}
    expected = _python_oracle(data)
    got = {s.name: evaluate(con, s, data.spec.reference_date)[0] for s in SEGMENTS}
    assert got == expected
    assert all(n > 0 for name, n in got.items() if name != "reference")
    con.close()


@pytest.mark.slow
def test_http_workloads_run_against_rapport_and_the_null_handler(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    code = main(["run", "--size", "300", "--runs", "1", "--only", "B1,B2", "--stores", "sqlite",
                 "--duration", "1", "--results", str(results)])  # fmt: skip
    assert code == 0
    rows = [line for line in results.read_text().splitlines() if line.startswith("| B")]
    assert [r.split("|")[1].strip() for r in rows] == ["B1", "B2"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "ok" and "events/s" in cells[4] and "null handler" in cells[7]
        assert "all accepted events stored" in cells[10] and " 0 non-2xx" in cells[10]


def test_a_server_that_never_becomes_healthy_is_stopped_not_left_running(tmp_path: Path) -> None:
    from bench.workloads.http_ingest import Server, uvicorn_command

    spawned: list[int] = []
    original = subprocess.Popen

    def remember(*args: Any, **kwargs: Any) -> Any:
        proc = original(*args, **kwargs)
        spawned.append(proc.pid)
        return proc

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "Popen", remember)
        with pytest.raises(RuntimeError, match="did not start"):
            Server(uvicorn_command("tests.bench.unhealthy_app:app", factory=False), env={}, health="/healthz",
                   log=tmp_path / "server.log", start_timeout=3)  # fmt: skip
    assert len(spawned) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(spawned[0], 0)  # gone, and reaped
