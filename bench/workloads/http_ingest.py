"""B1 (single ~300-byte events on /v1/track) and B2 (/v1/batch of 100 events): Rapport's ingest API against
a null FastAPI handler that only keeps the raw body, with the same bodies. B1 runs Rapport on one uvicorn
process (its reference is one uvicorn worker); B2 on ``rapport serve --processes 0``, the command a
deployment runs: one API process per core, each with its own ``SO_REUSEPORT`` socket.

Load comes from wrk in a separate process on 127.0.0.1 (one thread, ``CONNECTIONS`` per workload, ``ctx.duration``
seconds per run); every event has a unique messageId, so nothing is deduplicated away. The servers start
once and the runs alternate between them. After the runs the events Rapport stored are counted and must
include every accepted (2xx) event (acceptance means durable); a few more may be stored, the requests in
flight when wrk's deadline cut them off (at most connections x events per request per run).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tests.support.server import child_pids, serve_argv

from bench.harness import ROOT, Context, Measurement, Result
from bench.loadgen import ensure_wrk, run_wrk, write_bodies
from rapport.synth.generator import SynthSpec, iter_events

#: wrk connections per workload (the null handler gets the same). B1 acknowledges each event only once it is
#: durable, so with N connections at most N events can be in a group commit: by Little's law 16 connections
#: cap a durable server at 16 / commit time (an fsync is ~4 ms on this kind of disk: < 4k events/s whatever
#: the code). Real ingest sees thousands of concurrent SDK clients; 64 lets group commit do its job.
CONNECTIONS = {"B1": 64, "B2": 16}
#: B2's server: ``rapport serve`` with one API process per core and no worker.
SERVE_ARGS = ("--processes", "0", "--no-worker")
SPECS = {
    "B1": ("HTTP ingest, single ~300-byte events", ">= 5k events/s, p99 < 25 ms, >= 0.6x null handler",
           "/v1/track", 1),
    "B2": ("HTTP ingest, /v1/batch of 100 events", ">= 50k events/s", "/v1/batch", 100),
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChildProcess:
    """A process of a benchmark in its own session, logging to ``log``: its peak RSS, and a stop that
    reaps it (SIGTERM to its group, SIGKILL after 20 s)."""

    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def peak_rss_mb(self) -> float:
        """The process's peak RSS, plus its children's (a ``rapport serve --processes N`` supervisor)."""
        total = 0.0
        for pid in (self.proc.pid, *child_pids(self.proc.pid)):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        return total or float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def uvicorn_command(app: str, *, factory: bool) -> Callable[[int], list[str]]:
    """One uvicorn process serving ``app`` (an import string) on the given port."""

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning", *(["--factory"] if factory else [])]  # fmt: skip

    return command


def serve_command(*args: str) -> Callable[[int], list[str]]:
    """``rapport serve`` with ``args`` on the given port."""
    return lambda port: serve_argv(port, *args)


class Server(ChildProcess):
    """A server process (``command`` of its port) on a free loopback port, once ``health`` answers."""

    def __init__(
        self,
        command: Callable[[int], list[str]],
        *,
        env: dict[str, str],
        health: str,
        log: Path,
        start_timeout: float = 60,
    ) -> None:
        self.port = _free_port()
        self.log = log.open("ab")
        cmd = command(self.port)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, start_new_session=True, stdout=self.log, stderr=self.log
        )
        deadline = time.time() + start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"{' '.join(cmd[2:4])} exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{health}", timeout=2) as r:
                    if r.status < 500:
                        return
            except OSError as exc:
                if getattr(exc, "code", None) and int(exc.code) < 500:  # type: ignore[attr-defined]
                    return
                time.sleep(0.2)
        self.stop()  # alive but not healthy: not left running (with its in-process worker) after the run
        raise RuntimeError(f"{' '.join(cmd[2:4])} did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _small_events(seed: int, n: int = 1000, *, track_only: bool = False) -> list[dict[str, Any]]:
    """Generated events trimmed to about 300 bytes of JSON (context: channel, ip, timezone).

    ``track_only`` keeps track calls only: /v1/track refuses page, screen and identify messages.
    """
    import json

    out = []
    for event in iter_events(SynthSpec(profiles=400, seed=seed)):
        if track_only and event["type"] != "track":
            continue
        ctx = event["context"]
        props = {k: v for k, v in (event.get("properties") or {}).items() if k != "products"}
        small = {**event, "properties": props,
                 "context": {"channel": ctx["channel"], "ip": ctx["ip"], "timezone": ctx["timezone"]}}  # fmt: skip
        small.pop("messageId", None)
        if len(json.dumps(small, separators=(",", ":"))) <= 380:
            out.append(small)
        if len(out) >= n:
            break
    return out


class _RapportStore:
    """A migrated database with a workspace and write key, served by Rapport."""

    def __init__(self, ctx: Context, kind: str) -> None:
        from rapport.accounts import service as accounts_service
        from rapport.config import Settings
        from rapport.db import migrate
        from rapport.runtime import build_runtime

        self.kind = kind
        self.path: Path | None = ctx.out / "http-ingest.db" if kind == "sqlite" else None
        self.database = "" if kind == "sqlite" else "bench_http"
        if self.path is not None:
            self.url = f"sqlite:///{self.path}"
        else:
            self.url = ctx.pg_server().create_database(self.database)
        runtime = build_runtime(Settings(database_url=self.url, secret_key="bench-secret"))
        migrate.upgrade(runtime.engine)
        with runtime.sessions() as db:
            ws = accounts_service.create_workspace(db, name="Bench", slug=f"bench-{kind}")
            key = accounts_service.create_key(
                db, workspace_id=ws.id, kind="write", name="bench", actor="bench"
            )
            db.commit()
            self.workspace_id = ws.id
            self.write_key = key.plain
        runtime.close()
        env = {"RAPPORT_DATABASE_URL": self.url, "RAPPORT_SECRET_KEY": "bench-secret", "RAPPORT_LOG_LEVEL": "WARNING",
               "RAPPORT_RUN_WORKER_IN_PROCESS": "false"}  # fmt: skip
        self.server = Server(uvicorn_command("bench.reference.rapport_app:build", factory=True), env=env,
                             health="/healthz", log=ctx.out / f"server-{kind}.log")  # fmt: skip
        self.env = env
        self.log_dir = ctx.out
        self._serve: Server | None = None

    def serving(self, wid: str) -> Server:
        """B1's server is one uvicorn process; B2's is the production command, ``rapport serve
        --processes 0`` (one API process per core, each with its own SO_REUSEPORT socket), no worker."""
        if wid != "B2":
            return self.server
        if self._serve is None:
            self._serve = Server(serve_command(*SERVE_ARGS), env=self.env, health="/healthz",
                                 log=self.log_dir / f"server-{self.kind}-processes.log")  # fmt: skip
        return self._serve

    def stop(self) -> None:
        self.server.stop()
        if self._serve is not None:
            self._serve.stop()

    def stored(self) -> int:
        from sqlalchemy import func, select

        from rapport.config import Settings
        from rapport.models import Event
        from rapport.runtime import build_runtime

        runtime = build_runtime(Settings(database_url=self.url, secret_key="bench-secret"))
        with runtime.sessions() as db:
            n = db.scalar(
                select(func.count()).select_from(Event).where(Event.workspace_id == self.workspace_id)
            )
        runtime.close()
        return int(n or 0)

    @property
    def authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()


def _available() -> bool:
    try:
        from rapport.collect import api  # noqa: F401
    except ImportError:
        return False
    return True


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Run B1 and/or B2 against the null handler and Rapport on each store."""
    wanted = [i for i in ("B1", "B2") if i in ids]
    if not ensure_wrk():
        return [Result(i, SPECS[i][0], SPECS[i][1], status="not available",
                       note="wrk missing and not installable (apt-get install -y wrk)") for i in wanted]  # fmt: skip
    if not _available():
        return [Result(i, SPECS[i][0], SPECS[i][1], status="not available",
                       note="rapport.collect.api (POST /v1/track, /v1/batch) not available yet") for i in wanted]  # fmt: skip
    body_files = {"B1": ctx.out / "bodies-track.jsonl", "B2": ctx.out / "bodies-batch.jsonl"}
    write_bodies(body_files["B1"], _small_events(ctx.seed, track_only=True))
    write_bodies(body_files["B2"], _small_events(ctx.seed))
    null = Server(uvicorn_command("bench.reference.null_app:app", factory=False), env={}, health="/v1/track",
                  log=ctx.out / "server-null.log")  # fmt: skip
    stores: list[_RapportStore] = []
    results: list[Result] = []
    try:
        for kind in ctx.stores:
            stores.append(_RapportStore(ctx, kind))
        accepted = {s.kind: 0 for s in stores}
        in_flight = {s.kind: 0 for s in stores}  # cut off by wrk's deadline: handled but not counted
        for wid in wanted:
            title, target, path, per_request = SPECS[wid]
            bodies = body_files[wid]
            connections = CONNECTIONS[wid]
            ref = Measurement("null handler", "events/s")
            mine = {s.kind: Measurement("Rapport", "events/s") for s in stores}
            errors = {s.kind: 0 for s in stores}
            ref_latency: list[tuple[float, float]] = []
            latency: dict[str, list[tuple[float, float]]] = {s.kind: [] for s in stores}
            for run_no in range(ctx.runs):
                load = run_wrk(url=null.url(path), bodies=bodies, per_request=per_request, authorization="Basic x",
                               run_id=f"{wid}-null-{run_no}", duration=ctx.duration, workdir=ctx.out, connections=connections)  # fmt: skip
                ref.values.append((load.requests - load.errors) * per_request / load.seconds)
                ref_latency.append((load.p50_ms, load.p99_ms))
                for store in stores:
                    load = run_wrk(url=store.serving(wid).url(path), bodies=bodies, per_request=per_request,
                                   authorization=store.authorization, run_id=f"{wid}-{store.kind}-{run_no}",
                                   duration=ctx.duration, workdir=ctx.out, connections=connections)  # fmt: skip
                    ok = load.requests - load.errors
                    accepted[store.kind] += ok * per_request
                    in_flight[store.kind] += connections * per_request
                    errors[store.kind] += load.errors
                    mine[store.kind].values.append(ok * per_request / load.seconds)
                    latency[store.kind].append((load.p50_ms, load.p99_ms))
                    ctx.log(f"  {wid} {store.kind} run {run_no + 1}: {ok * per_request / load.seconds:,.0f} events/s "
                            f"p99 {load.p99_ms:.1f} ms, {load.errors} non-2xx/errors; null "
                            f"{ref.values[-1]:,.0f} events/s")  # fmt: skip
            ref.p50_ms, ref.p99_ms = _median_pair(ref_latency)
            ref.rss_mb = null.peak_rss_mb()
            for store in stores:
                m = mine[store.kind]
                m.p50_ms, m.p99_ms = _median_pair(latency[store.kind])
                m.rss_mb = store.serving(wid).peak_rss_mb()
                shape = (f"`rapport serve {' '.join(SERVE_ARGS[:2])}` ({os.cpu_count()} API processes); "
                         if wid == "B2" else "one uvicorn process; ")  # fmt: skip
                note = (f"{shape}wrk 1 thread, {CONNECTIONS[wid]} connections, {ctx.duration:.0f} s per run; "
                        f"{errors[store.kind]} non-2xx")  # fmt: skip
                results.append(
                    Result(wid, title, target, store=store.kind, measurement=m, reference=ref, note=note)
                )
        time.sleep(0.5)  # the group committer's last flush
        for store in stores:
            stored = store.stored()
            ok = accepted[store.kind] <= stored <= accepted[store.kind] + in_flight[store.kind]
            check = "all accepted events stored" if ok else (
                f"MISMATCH: {accepted[store.kind]:,} accepted, {stored:,} stored")  # fmt: skip
            for r in results:
                if r.store == store.kind:
                    r.note += f"; {check}"
    finally:
        null.stop()
        for store in stores:
            store.stop()
            ctx.drop_store(path=store.path, database=store.database)
    return results


def _median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    import statistics

    return statistics.median(p for p, _ in pairs), statistics.median(q for _, q in pairs)
