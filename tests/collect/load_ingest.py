"""Load script for the tracking API (B1/B2 shape), not collected by pytest; for the lead and bench/.

Starts a real ``rapport serve`` (uvicorn, one process) over a fresh SQLite file, or a given PostgreSQL URL,
and a null handler (the same FastAPI + uvicorn answering ``{"success": true}`` without storing), then drives
each with aiohttp for a fixed time and prints events/s and latency percentiles::

    .venv/bin/python -m tests.collect.load_ingest --mode single --concurrency 32 --seconds 10
    .venv/bin/python -m tests.collect.load_ingest --mode batch --concurrency 8 --seconds 10
    .venv/bin/python -m tests.collect.load_ingest --database-url postgresql://…/db   # migrated, empty

The load generator shares the machine with the server; on a small box it takes a good part of the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from fastapi import FastAPI, Request, Response

SECRET = "load-test-secret-0123456789"

null_app = FastAPI()


@null_app.post("/v1/track")
@null_app.post("/v1/batch")
async def null_handler(request: Request) -> Response:
    """Read the body and answer like the real endpoint, storing nothing (the B1/B2 reference)."""
    await request.body()
    return Response(b'{"success":true}', media_type="application/json")


@null_app.get("/healthz")
async def null_health() -> dict[str, str]:
    """Readiness for the load script."""
    return {"status": "ok"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    try:
        _poll_health(port, proc)
    except BaseException:
        proc.kill()  # never leave a half-started server behind
        proc.wait()
        raise


def _poll_health(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def serve_rapport(db_url: str, port: int, full_sync: bool) -> None:
    """Run Rapport's app under uvicorn like ``rapport serve --no-worker`` (in the server subprocess)."""
    import uvicorn

    from rapport.app import create_app
    from rapport.collect.api import build_ingest
    from rapport.config import Settings
    from rapport.kit.logs import configure_logging
    from rapport.runtime import build_runtime

    settings = Settings(database_url=db_url, secret_key=SECRET, run_worker_in_process=False)
    configure_logging(level="WARNING", json_lines=True)
    runtime = build_runtime(settings)
    app = create_app(settings, runtime=runtime)
    if not full_sync:
        app.state.ingest = build_ingest(runtime, full_sync=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def start_rapport(db_url: str, port: int, *, full_sync: bool = True) -> subprocess.Popen[bytes]:
    """Start Rapport (ingest only, no worker) in a subprocess."""
    code = (
        f"from tests.collect.load_ingest import serve_rapport; serve_rapport({db_url!r}, {port}, {full_sync})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait(port, proc)
    return proc


def start_null(port: int) -> subprocess.Popen[bytes]:
    """Start the null handler under uvicorn with the same loop and HTTP parser as ``rapport serve``."""
    code = (
        "import uvicorn; from tests.collect.load_ingest import null_app; "
        f"uvicorn.run(null_app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait(port, proc)
    return proc


def make_workspace(db_url: str) -> str:
    """Create a workspace with a write key in the database; return the key."""
    from rapport.accounts import service as accounts_service
    from rapport.config import Settings
    from rapport.db import migrate
    from rapport.runtime import build_runtime

    runtime = build_runtime(Settings(database_url=db_url, secret_key=SECRET))
    migrate.upgrade(runtime.engine)
    with runtime.sessions() as db:
        slug = "load-" + uuid.uuid4().hex[:8]
        ws = accounts_service.create_workspace(db, name="Load", slug=slug)
        key = accounts_service.create_key(db, workspace_id=ws.id, kind="write", name="load", actor="load")
        db.commit()
    runtime.close()
    return key.plain


def event(i: int, run: str) -> dict[str, Any]:
    """A ~300-byte track event."""
    return {
        "type": "track",
        "messageId": f"{run}-{i}",
        "userId": f"user-{i % 5000}",
        "event": "Product Viewed",
        "properties": {"sku": f"SKU-{i % 977:05d}", "price": 19.99, "currency": "GBP", "category": "shoes"},
        "context": {"ip": "203.0.113.7", "locale": "en-GB", "library": {"name": "analytics-node"}},
        "timestamp": "2026-03-01T12:00:00.000Z",
    }


async def drive(
    port: int, key: str, *, mode: str, concurrency: int, seconds: float, batch_size: int = 100
) -> dict[str, Any]:
    """Send for ``seconds`` with ``concurrency`` connections; return throughput and latency."""
    import base64

    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]
    counter = iter(range(10**12))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    events_sent = 0
    url = f"http://127.0.0.1:{port}/v1/" + ("track" if mode == "single" else "batch")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal events_sent
            while time.perf_counter() < end:
                if mode == "single":
                    body = json.dumps(event(next(counter), run)).encode()
                    n = 1
                else:
                    body = json.dumps(
                        {"batch": [event(next(counter), run) for _ in range(batch_size)]}
                    ).encode()
                    n = batch_size
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    statuses[answer.status] = statuses.get(answer.status, 0) + 1
                latencies.append(time.perf_counter() - started)
                if answer.status == 200:
                    events_sent += n

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    sample_size = len(json.dumps(event(0, run)).encode())
    return {
        "mode": mode,
        "concurrency": concurrency,
        "event_bytes": sample_size,
        "events_per_s": round(events_sent / elapsed),
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "statuses": statuses,
    }


def main() -> None:
    """Run the ingest server and the null handler under the same load; print both results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--skip-null", action="store_true")
    parser.add_argument(
        "--no-full-sync",
        action="store_true",
        help="SQLite: commit with synchronous=NORMAL (no fsync per group)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rapport-load-"))
    db_url = args.database_url or f"sqlite:///{tmp / 'load.db'}"
    key = make_workspace(db_url)
    targets = [("rapport", lambda port: start_rapport(db_url, port, full_sync=not args.no_full_sync))]
    if not args.skip_null:
        targets.append(("null", start_null))
    for name, start in targets:
        port = _free_port()
        proc = start(port)
        try:
            asyncio.run(
                drive(port, key, mode=args.mode, concurrency=args.concurrency, seconds=1.0)
            )  # warm up
            cpu_before = _cpu_seconds(proc.pid)
            result = asyncio.run(
                drive(port, key, mode=args.mode, concurrency=args.concurrency, seconds=args.seconds)
            )
            cpu = _cpu_seconds(proc.pid) - cpu_before
        finally:
            proc.terminate()
            proc.wait()
        events = result["events_per_s"] * args.seconds
        extra = {"full_sync": not args.no_full_sync} if name == "rapport" else {}
        # Server CPU per event does not depend on what else the machine runs: the fair comparison on a
        # busy box.
        print(
            json.dumps(
                {"target": name, **extra, **result, "server_cpu_us_per_event": round(cpu / events * 1e6, 1)}
            )
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
