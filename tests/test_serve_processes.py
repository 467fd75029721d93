"""``rapport serve --processes N``: real processes on one port, each with its own SO_REUSEPORT socket.

The connections of many clients land on both processes (the kernel spreads them), every accepted event is
stored, a process that dies is replaced, SIGTERM stops them all, and a port another program holds is a
clear error. Both databases.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from rapport.accounts import service as accounts_service
from rapport.cli import processes
from rapport.config import Settings
from rapport.models import Event
from rapport.models.event import PENDING
from rapport.runtime import build_runtime
from tests.support.pg import free_port
from tests.support.server import RapportServer, child_pids
from tests.test_cli import rapport

pytestmark = pytest.mark.skipif(not processes.supported(), reason="several API processes need Linux")


def _established_on(port: int) -> dict[int, str]:
    """Socket inode -> remote address of the established TCP connections to 127.0.0.1:``port``."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == port:
            out[inode] = remote
    return out


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _workspace_key(database_url: str) -> tuple[int, str]:
    runtime = build_runtime(Settings(database_url=database_url, secret_key="s" * 32))
    try:
        with runtime.sessions() as db:
            ws = accounts_service.create_workspace(db, name="Shop", slug="shop")
            key = accounts_service.create_key(db, workspace_id=ws.id, kind="write", name="sdk", actor="test")
            db.commit()
            return ws.id, key.plain
    finally:
        runtime.close()


def _events(database_url: str, workspace_id: int) -> tuple[int, int]:
    """(stored, still pending) events of the workspace."""
    runtime = build_runtime(Settings(database_url=database_url, secret_key="s" * 32))
    try:
        with runtime.sessions() as db:
            where = Event.workspace_id == workspace_id
            stored = db.scalar(select(func.count()).select_from(Event).where(where))
            pending = db.scalar(select(func.count()).select_from(Event).where(where, Event.state == PENDING))
            return int(stored or 0), int(pending or 0)
    finally:
        runtime.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[RapportServer, int, str]]:
    """``rapport serve --processes 2`` (in-process worker on) over a database with a workspace."""
    workspace_id, key = _workspace_key(db_url)
    server = RapportServer(db_url, extra_args=["--processes", "2"], workdir=tmp_path).start()
    try:
        _wait(lambda: "(2 processes;" in server.output())
        yield server, workspace_id, key
    finally:
        server.stop()


def test_connections_spread_over_both_processes_and_every_event_is_stored(
    served: tuple[RapportServer, int, str], db_url: str
) -> None:
    server, workspace_id, key = served
    assert server.proc is not None
    children = child_pids(server.proc.pid)
    assert len(children) == 2
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    clients = [httpx.Client(base_url=server.url, headers=auth) for _ in range(24)]  # 24 connections
    try:
        for n, client in enumerate(clients):
            batch = [{"type": "track", "event": "Viewed", "userId": f"u{n}", "messageId": f"m{n}-{i}"}
                     for i in range(5)]  # fmt: skip
            answer = client.post("/v1/batch", json={"batch": batch})
            assert answer.status_code == 200 and answer.json() == {"success": True}
        connections = _established_on(server.port)
        owners = {pid: _socket_inodes(pid) & set(connections) for pid in children}
        assert sum(len(inodes) for inodes in owners.values()) == 24
        # each process accepted some (all 24 on one of two sockets: a chance of 1 in 8 million)
        assert all(owners.values()), {pid: len(inodes) for pid, inodes in owners.items()}
    finally:
        for client in clients:
            client.close()
    assert _events(db_url, workspace_id)[0] == 120
    _wait(lambda: _events(db_url, workspace_id)[1] == 0)  # the first process's worker processed them all


def test_a_process_that_dies_is_replaced_and_sigterm_stops_them_all(
    served: tuple[RapportServer, int, str],
) -> None:
    server, _workspace_id, _key = served
    assert server.proc is not None
    supervisor = server.proc.pid
    victim = min(child_pids(supervisor))
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: len(child_pids(supervisor)) == 2 and victim not in child_pids(supervisor))
    _wait(lambda: "starting it again" in server.output())
    replaced = child_pids(supervisor)
    for _ in range(10):  # whichever process answers, the port serves
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    for pid in replaced:  # reaped by the supervisor before it exited
        assert not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_port_taken_by_another_program_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:  # no SO_REUSEPORT: nobody may share it
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = rapport(
            "serve", "--processes", "2", "--port", str(port), database_url=db_url,
            env={"RAPPORT_SECRET_KEY": "s" * 32}, check=False, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 1
    assert "exited with code 3 while starting" in done.stdout
    assert "cannot listen" in done.stderr


def test_process_counts() -> None:
    assert processes.resolve_count(3) == 3
    assert processes.resolve_count(0) == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="negative"):
        processes.resolve_count(-1)


def test_an_absurd_number_of_processes_is_refused_before_anything_starts(tmp_path: Path) -> None:
    # a fuzzed --processes of 10**20 forked API processes until the machine stalled
    url = f"sqlite:///{tmp_path / 'p.db'}"
    for value in ("65", str(10**20)):
        refused = subprocess.run(
            [sys.executable, "-m", "rapport", "serve", "--processes", value, "--database-url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2 and "--processes" in refused.stderr, refused.stderr
    env = {**os.environ, "RAPPORT_API_PROCESSES": "1000"}
    refused = subprocess.run(
        [sys.executable, "-m", "rapport", "serve", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert refused.returncode != 0 and "api_processes" in (refused.stdout + refused.stderr)
