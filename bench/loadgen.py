"""HTTP load from a separate process: wrk (Debian package, installed on demand when root) with a Lua
script that gives every event a unique messageId; bounded by time (``-d``) and connections."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_LUA = r"""
local bodies = {}
local n_bodies = 0
local counter = 0
local prefix = "wrk"
local per_request = 1
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1] .. "-" .. tid
  per_request = tonumber(args[2])
  local f = assert(io.open(args[3], "r"))
  for line in f:lines() do
    n_bodies = n_bodies + 1
    bodies[n_bodies] = line
  end
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = args[4]
end

local function one()
  counter = counter + 1
  local template = bodies[(counter % n_bodies) + 1]
  return (template:gsub("__MID__", prefix .. "-" .. counter, 1))
end

function request()
  if per_request == 1 then
    return wrk.format(nil, nil, nil, one())
  end
  local parts = {}
  for i = 1, per_request do
    parts[i] = one()
  end
  return wrk.format(nil, nil, nil, '{"batch":[' .. table.concat(parts, ",") .. ']}')
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What wrk measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def ensure_wrk() -> str | None:
    """Return the wrk binary, installing Debian's package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, env=env, check=False)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, env=env, check=False
            )
    return shutil.which("wrk")


def write_bodies(path: Path, events: list[dict[str, object]]) -> None:
    """Write one event per line with the messageId replaced by the ``__MID__`` placeholder."""
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            body = {**event, "messageId": "__MID__"}
            out.write(json.dumps(body, separators=(",", ":")) + "\n")


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    *,
    url: str,
    bodies: Path,
    per_request: int,
    authorization: str,
    run_id: str,
    duration: float,
    connections: int = 16,
    threads: int = 1,
    workdir: Path,
) -> LoadResult:
    """Run wrk against ``url`` for ``duration`` seconds and parse its report."""
    script = workdir / "ingest.lua"
    script.write_text(_LUA)
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "5s",
        "-s", str(script), url, "--", run_id, str(per_request), str(bodies), authorization,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 60)
    out = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {proc.stderr or out}")
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    span = re.search(r"requests in ([\d.]+\w+)", out).group(1)  # type: ignore[union-attr]
    seconds = _ms(span) / 1000
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return LoadResult(requests, seconds, rps, p50, p99, errors)
