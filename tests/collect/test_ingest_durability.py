"""R2: acknowledged means durable. A real uvicorn server is killed with SIGKILL mid-load; after a restart
every messageId that got a 2xx is stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rapport.config import Settings
from rapport.models import Event
from rapport.runtime import build_runtime
from tests.collect.ingest_support import basic, track
from tests.support.databases import SqliteFactory
from tests.support.pg import free_port
from tests.support.tenants import make_tenant

SECRET = "durability-test-secret-0123456789"


def _start_server(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAPPORT_SECRET_KEY": SECRET, "RAPPORT_LOG_LEVEL": "WARNING"}
    code = "from rapport.cli import main; main()"
    args = [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--database-url", db_url, "--no-worker"]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 120  # importing the app takes 15-30 s on a loaded 2-core machine
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.mark.slow
def test_every_acknowledged_event_survives_kill_9(sqlite_factory: SqliteFactory, tmp_path: Path) -> None:
    db_url = sqlite_factory.new_url(tmp_path)
    runtime = build_runtime(Settings(database_url=db_url, secret_key=SECRET))
    tenant = make_tenant(runtime, "durable")
    runtime.close()
    port = free_port()
    log = tmp_path / "server.log"
    server = _start_server(db_url, port, log)

    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    headers = basic(tenant.write_key)

    def load(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            n = 0
            while not stop.is_set():
                n += 1
                if n % 5 == 0:
                    ids = [f"w{worker}-{n}-{j}" for j in range(10)]
                    request = ("/v1/batch", {"batch": [track(i) for i in ids]})
                else:
                    ids = [f"w{worker}-{n}"]
                    request = ("/v1/track", track(ids[0]))
                try:
                    answer = http.post(request[0], json=request[1], headers=headers)
                except httpx.HTTPError:
                    continue  # the server is gone: this request was never acknowledged
                if 200 <= answer.status_code < 300:
                    with lock:
                        acked.update(ids)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while len(acked) < 1500 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(server.pid, signal.SIGKILL)  # mid-load: requests are in flight and queued
    server.wait()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 1500, log.read_text()[-2000:]

    server = _start_server(db_url, port, log)
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/track", json=track("after-restart"), headers=headers)
        assert answer.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    runtime = build_runtime(Settings(database_url=db_url, secret_key=SECRET))
    try:
        with runtime.read_sessions() as db:
            stored = set(
                db.scalars(select(Event.message_id).where(Event.workspace_id == tenant.workspace_id))
            )
    finally:
        runtime.close()
    missing = acked - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert "after-restart" in stored
