"""B5: real time, end to end. Events go in over HTTP at ~1k events/s to a ``rapport serve``-like process
(API + in-process worker); each one makes its profile enter a segment, whose entry triggers a campaign
(one of 50 active triggers) that hands an email to the SMTP channel. The latency of an event is the time
from the moment the load generator sent it to the moment a local SMTP sink (its own process) received the
message for that person. Reported: p50/p99 over all events of the runs, and messages received / events.
The sink is Postfix's smtp-sink, as in B8 (C, PIPELINING like a real MTA; a thread here stamps each
recipient when its transaction appears in the sink's dump); aiosmtpd, a Python server without PIPELINING
that took a core and capped at ~900 messages/s in B8, is the fallback (``RAPPORT_BENCH_SMTP_SINK``).

The load generator sends ``/v1/batch`` requests of 10 events every 10 ms from one thread over a keep-alive
connection (it is not the bottleneck: it sleeps most of the time), so the latency includes the batching
wait of at most 10 ms on the client side too.

The worker runs with the default poll interval (``worker_poll_seconds`` 0.2 s; ``RAPPORT_BENCH_B5_POLL``
overrides it): new events wake the processor's lane at once (in one process the ingest committer, across
processes PostgreSQL's NOTIFY), and a lane that did work wakes the others, so the chain event -> entry ->
message never waits for a poll. A 10 ms poll, as earlier sessions ran B5, only made every idle lane ask the
database a hundred times a second on the same two cores (measured: about as much of the worker's time as
the event processor itself).

Before the measured runs, half a second of the same load (500 more customers) warms the fresh server (and
workers) up and is not measured: its first batches fill the processes' caches (compiled and prepared
statements, lazily imported modules); the first run starts once the warm-up's messages have arrived.

A second row per store runs the same load against a workspace without campaigns: event -> processed (the
segment entry's ``entered_at``, stamped by the transaction that applied the event and updated its computed
traits), issue #4's freshness and #5's entry latency without a backlog of a thousand messages a second
competing for the same two cores.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Context, Measurement, Result
from bench.workloads.delivery import SINK_ENV, PostfixSink, ensure_smtp_sink
from bench.workloads.http_ingest import ChildProcess, Server, _free_port, uvicorn_command

ID = "B5"
TITLE = "real time: event -> segment entry -> triggered message at 1k events/s, 50 triggers"
TARGET = "p99 < 100 ms"
RATE = 1000  # events per second
BATCH = 10
TRIGGERS = 50
WARMUP = 500  # events sent before the measured runs (half a second), not measured


def sink_main(port: int, out: str) -> None:
    """Run an SMTP sink that appends "<recipient> <arrival unix time>" lines to ``out`` (its own process)."""
    import asyncio

    from aiosmtpd.controller import Controller

    handle = open(out, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  (lives as long as the process)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.time()
            for rcpt in envelope.rcpt_tos:
                handle.write(f"{rcpt} {now:.6f}\n")
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.sleep(10**9))
    finally:
        controller.stop()


class _Sink:
    def __init__(self, out: Path) -> None:
        self.port = _free_port()
        self.file = out
        self.file.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.workloads.realtime", "sink", str(self.port), str(out)],
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
        time.sleep(1.0)

    def arrivals(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for line in self.file.read_text().splitlines():
            rcpt, _, stamp = line.partition(" ")
            found.setdefault(rcpt, float(stamp))
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class _PostfixArrivals:
    """Postfix's smtp-sink (C, event-driven, PIPELINING like a real MTA) in its own process, dumping every
    transaction to a file; a thread of this process stamps each recipient when its transaction appears there
    (the file is read every 2 ms, so an arrival is stamped at most ~2 ms late: smtp-sink writes and closes
    the dump before it answers the final ".")."""

    _RCPT = b"X-Rcpt-Args: <"

    def __init__(self, binary: str) -> None:
        self.sink = PostfixSink(binary)
        self.port = self.sink.port
        self._found: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="b5-sink-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        # a transaction is the sink's marker line, its envelope (X-Client-Addr, …, one X-Rcpt-Args per
        # recipient) up to its Received: line, then the message: only envelope lines count, so no message
        # body can forge a recipient
        offset, pending, envelope = 0, b"", False
        marker = self.sink.marker
        while not self._stop.is_set():
            try:
                with open(self.sink.dump, "rb") as dump:
                    dump.seek(offset)
                    data = dump.read()
            except FileNotFoundError:
                data = b""
            if not data:
                time.sleep(0.002)
                continue
            now = time.time()
            offset += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if line == marker:
                    envelope = True
                elif envelope and line.startswith(self._RCPT):
                    rcpt = line[len(self._RCPT) :].split(b">", 1)[0].decode()
                    self._found.setdefault(rcpt, now)
                elif envelope and (not line or line.startswith(b"Received:")):
                    envelope = False

    def arrivals(self) -> dict[str, float]:
        return dict(self._found)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sink.close()


def _start_sink(out: Path, log: Any) -> tuple[_Sink | _PostfixArrivals, str]:
    """smtp-sink when it is (or can be) installed, as B8 uses it; aiosmtpd when it cannot be, or when
    ``RAPPORT_BENCH_SMTP_SINK=aiosmtpd``. aiosmtpd (Python, no PIPELINING) took a whole core on this
    2-core machine and capped at ~900 messages/s in B8: below B5's 1k messages/s by itself."""
    wanted = os.environ.get(SINK_ENV, "").strip()
    binary = None if wanted == "aiosmtpd" else ensure_smtp_sink()
    if binary is None:
        if wanted == "smtp-sink":
            raise RuntimeError("smtp-sink is not installed and cannot be installed here")
        log("  B5: SMTP sink aiosmtpd (Postfix smtp-sink not used)")
        return _Sink(out), "SMTP sink aiosmtpd in its own process"
    return _PostfixArrivals(binary), "SMTP sink Postfix smtp-sink in its own process (arrivals from its dump)"


def _prepare(url: str, *, people: int, triggers: bool = True) -> tuple[str, int]:
    """Migrate, make a workspace with a write key, ``people`` consenting customers, the "Hot" segment and
    (with ``triggers``) 49 decoy triggers and the segment-entry campaign under test. Returns (write key,
    workspace id)."""
    from sqlalchemy import insert

    from rapport.accounts import service as accounts_service
    from rapport.app import wire_runtime
    from rapport.campaigns import service as campaigns_service
    from rapport.campaigns.schemas import CampaignCreate
    from rapport.collect.importer import import_profile_rows
    from rapport.config import Settings
    from rapport.db import migrate
    from rapport.models import Identity, Subscription
    from rapport.runtime import build_runtime
    from rapport.segments import service as segments_service
    from rapport.segments.schemas import SegmentCreate

    runtime = build_runtime(Settings(database_url=url, secret_key="bench-secret"))
    migrate.upgrade(runtime.engine)
    wire_runtime(runtime)
    with runtime.sessions() as db:
        ws = accounts_service.create_workspace(db, name="Bench", slug="bench-b5")
        key = accounts_service.create_key(db, workspace_id=ws.id, kind="write", name="bench", actor="bench")
        db.commit()
        workspace_id, write_key = ws.id, key.plain
    rows = [
        {"user_id": f"u{i}", "email": f"u{i}@bench.example", "city": "Leeds", "hot": False}
        for i in range(people)
    ]
    import_profile_rows(runtime, workspace_id=workspace_id, rows=rows)
    now = runtime.clock.now()
    with runtime.sessions() as db:
        ids = [
            pid
            for (pid,) in db.query(Identity.profile_id).filter(
                Identity.workspace_id == workspace_id, Identity.kind == "user_id"
            )
        ]
        db.execute(
            insert(Subscription),
            [
                {
                    "workspace_id": workspace_id,
                    "profile_id": pid,
                    "channel": "email",
                    "topic": "",
                    "state": "subscribed",
                    "updated_at": now,
                    "source": "bench",
                }
                for pid in ids
            ],
        )
        db.commit()
    email = {"subject": "Hello {{ first_name | default: 'there' }}", "text": "You are in."}
    with runtime.sessions() as db:
        target = segments_service.create_segment(
            db,
            workspace_id=workspace_id,
            data=SegmentCreate(name="Hot", text="hot = true"),
            actor="bench",
            now=now,
        )
        if not triggers:
            db.commit()
            _settle(runtime)
            return write_key, workspace_id
        for i in range(TRIGGERS - 1):  # decoys: other events, other segments' entries
            if i % 2:
                trigger: dict[str, Any] = {"type": "event", "event": f"decoy_{i}"}
            else:
                decoy = segments_service.create_segment(
                    db, workspace_id=workspace_id, data=SegmentCreate(name=f"Decoy {i}", text=f'city = "X{i}"'),
                    actor="bench", now=now,
                )  # fmt: skip
                trigger = {"type": "segment_entry", "segment_id": decoy.id}
            c = campaigns_service.create_campaign(
                db, workspace_id=workspace_id, actor="bench", now=now,
                data=CampaignCreate(name=f"Decoy {i}", kind="triggered", channel="email", trigger=trigger,
                                    variants=[{"key": "A", "content": email}]),
            )  # fmt: skip
            campaigns_service.do_launch(
                db, workspace_id=workspace_id, campaign_id=c.id, actor="bench", now=now
            )
        c = campaigns_service.create_campaign(
            db, workspace_id=workspace_id, actor="bench", now=now,
            data=CampaignCreate(name="Welcome hot", kind="triggered", channel="email",
                                trigger={"type": "segment_entry", "segment_id": target.id},
                                variants=[{"key": "A", "content": email}]),
        )  # fmt: skip
        campaigns_service.do_launch(db, workspace_id=workspace_id, campaign_id=c.id, actor="bench", now=now)
        db.commit()
    _settle(runtime)
    return write_key, workspace_id


def _settle(runtime: Any) -> None:
    """Close the set-up's runtime; on PostgreSQL, ``VACUUM ANALYZE`` its freshly loaded tables first: a
    production database holding these customers has long been analysed, and autovacuum's analysis of the
    load, had it been left to run during the first measured run, shared its two cores."""
    if not runtime.is_sqlite:
        with runtime.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    runtime.close()


def _load(server: Server, write_key: str, users: range, *, rate: int) -> dict[str, float]:
    """Send one identify (hot = true) per user at ``rate`` events/s; return each user's send time."""
    import base64

    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent: dict[str, float] = {}
    interval = BATCH / rate
    start = time.perf_counter()
    ordered = list(users)
    for n, first in enumerate(range(0, len(ordered), BATCH)):
        due = start + n * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        chunk = ordered[first : first + BATCH]
        body = json.dumps(
            {"batch": [{"type": "identify", "userId": f"u{i}", "traits": {"hot": True}} for i in chunk]}
        )
        stamp = time.time()
        conn.request(
            "POST",
            "/v1/batch",
            body=body,
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/v1/batch answered {response.status}")
        for i in chunk:
            sent[f"u{i}@bench.example"] = stamp
    conn.close()
    return sent


def _warm_up(
    server: Server, write_key: str, url: str, users: range, arrivals: Callable[[], dict[str, float]] | None
) -> None:
    """Send half a second of the load to users outside the measured runs and wait until they are in the
    segment and, with ``arrivals`` (the sink's), until their messages arrived: the first batches of each
    fresh process (the API's, and the workers' when they run apart) fill its caches (compiled statements,
    prepared ones, lazily imported modules) and are not what the runs measure, and the first run does not
    start behind the warm-up's messages still being delivered."""
    sent = _load(server, write_key, users, rate=RATE)
    deadline = time.time() + 60
    while time.time() < deadline and not set(sent) <= set(_entries(url, users)):
        time.sleep(0.2)
    while arrivals is not None and time.time() < deadline and not set(sent) <= set(arrivals()):
        time.sleep(0.2)


def _entries(url: str, users: range) -> dict[str, float]:
    """When each user's profile entered the "Hot" segment (unix time): the processing transaction that
    applied the event, updated the computed traits and recorded the entry stamps it with its clock."""
    from sqlalchemy import select

    from rapport.models import Identity, Segment, SegmentMember

    return _stamps(
        url,
        users,
        select(Identity.value, SegmentMember.entered_at)
        .join(SegmentMember, SegmentMember.profile_id == Identity.profile_id)
        .join(Segment, Segment.id == SegmentMember.segment_id)
        .where(Segment.name == "Hot", Identity.kind == "user_id"),
    )


def _queued(url: str, users: range) -> dict[str, float]:
    """When each user's triggered message was written to the outbox (unix time: the row's created_at,
    stamped by the transaction that applied the event and admitted the profile to the campaign)."""
    from sqlalchemy import select

    from rapport.models import Identity, Message

    return _stamps(
        url,
        users,
        select(Identity.value, Message.created_at)
        .join(Message, Message.profile_id == Identity.profile_id)
        .where(Identity.kind == "user_id"),
    )


def _stamps(url: str, users: range, query: Any) -> dict[str, float]:
    """Run ``query`` ((user id, time) rows) and return the times of ``users`` by their address."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    wanted = {f"u{i}" for i in users}
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    return {f"{user}@bench.example": at.timestamp() for user, at in rows if user in wanted}


def _stages(sent: dict[str, float], entered: dict[str, float], queued: dict[str, float],
            arrivals: dict[str, float]) -> str:  # fmt: skip
    """p50/p99 of each stage of the chain, in ms: event -> processed (segment entry), processed -> queued
    (the triggered message's outbox row), queued -> received by the sink."""
    spans = {
        "processed": [(entered[a] - t) * 1000 for a, t in sent.items() if a in entered],
        "then queued": [(queued[a] - entered[a]) * 1000 for a in sent if a in queued and a in entered],
        "then received": [(arrivals[a] - queued[a]) * 1000 for a in sent if a in queued and a in arrivals],
    }
    return ", ".join(
        f"{name} p50 {_percentile(v, 0.5):.0f} / p99 {_percentile(v, 0.99):.0f} ms"
        for name, v in spans.items()
        if v
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


PROCESSING_TITLE = "real time, processing only: event -> computed traits and segment entry at 1k events/s"
PROCESSING_TARGET = "p99 < 1 s (#4 freshness); < 100 ms (#5 entry)"


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Run B5 on each store: end to end with the triggered messages, then processing alone (no campaigns:
    the event -> processed latency without a message backlog competing for the same two cores)."""
    results: list[Result] = []
    for store in ctx.stores:
        results.append(_run_store(ctx, store, messages=True))
        results.append(_run_store(ctx, store, messages=False))
        if store == "postgresql":  # also as production runs it: API and worker in their own processes
            results.append(_run_store(ctx, store, messages=True, shape=ONE_WORKER))
            results.append(_run_store(ctx, store, messages=False, shape=ONE_WORKER))
            results.append(_run_store(ctx, store, messages=True, shape=SPLIT_WORKERS))
    return results


@dataclass(frozen=True)
class _Shape:
    """How Rapport runs for one B5 row: the roles of each ``rapport worker`` process beside the API (none:
    the API's in-process worker does everything; "": a worker with every role), and how the row says so."""

    suffix: str  # of the store's and the logs' names
    workers: tuple[str, ...]
    title: str
    note: str


IN_PROCESS = _Shape("", (), "", "")
ONE_WORKER = _Shape(
    "_worker", ("",), ", API and worker processes",
    "production shape: API process (uvicorn, no in-process worker) + one `rapport worker` process woken by "
    "NOTIFY; RSS is the sum of both",
)  # fmt: skip
#: Delivery in a worker process of its own (``rapport worker --role``).
SPLIT_WORKERS = _Shape(
    "_worker_roles", ("events,jobs", "delivery"), ", API, events and delivery processes",
    "production shape: API process (uvicorn, no in-process worker) + `rapport worker --role events,jobs` + "
    "`rapport worker --role delivery`, each woken by NOTIFY (events; queued messages); RSS is the sum of all "
    "three",
)  # fmt: skip


class _WorkerProcess(ChildProcess):
    """``rapport worker`` in its own process (PostgreSQL's production shape: ``rapport serve --no-worker``
    beside it), woken by the API's NOTIFY."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        start = log.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rapport", "worker"],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, **env},
            start_new_session=True,
            stdout=self.log,
            stderr=self.log,
        )
        # ready once it says it is polling (imports done, lanes and the LISTEN thread starting)
        deadline = time.monotonic() + 60
        while b"polling" not in log.read_bytes()[start:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rapport worker did not start (exit {self.proc.returncode}; see {log})")
            time.sleep(0.05)
        time.sleep(0.5)  # its lanes' first polls, before any load


def _run_store(ctx: Context, store: str, *, messages: bool, shape: _Shape = IN_PROCESS) -> Result:
    """One B5 row, with Rapport's processes as ``shape`` says."""
    per_run = max(500, min(3000, int(RATE * ctx.duration)))
    name = ("realtime" if messages else "processing") + shape.suffix
    path, database = (ctx.out / f"{name}.db", "") if store == "sqlite" else (None, f"bench_{name}")
    url = f"sqlite:///{path}" if path is not None else ctx.pg_server().create_database(database)
    what = f"{TRIGGERS} triggers" if messages else "no campaigns"
    ctx.log(f"B5 {store}: preparing {per_run * ctx.runs:,} customers and {what} ...")
    write_key, _ = _prepare(url, people=per_run * ctx.runs + WARMUP, triggers=messages)
    sink, sink_note = _start_sink(ctx.out / f"b5-sink-{store}-{name}.txt", ctx.log)
    env = {"RAPPORT_DATABASE_URL": url, "RAPPORT_SECRET_KEY": "bench-secret", "RAPPORT_LOG_LEVEL": "WARNING",
           "RAPPORT_RUN_WORKER_IN_PROCESS": "true", "RAPPORT_SMTP_HOST": "127.0.0.1",
           "RAPPORT_SMTP_PORT": str(sink.port), "RAPPORT_SPOOL_DIR": str(ctx.out / f"spool-{store}-{name}"),
           "RAPPORT_WORKER_POLL_SECONDS": os.environ.get("RAPPORT_BENCH_B5_POLL", "0.2")}  # fmt: skip
    if shape.workers:
        env["RAPPORT_RUN_WORKER_IN_PROCESS"] = "false"
    try:
        server = Server(uvicorn_command("bench.workloads.realtime:build_app", factory=True), env=env,
                        health="/healthz", log=ctx.out / f"server-b5-{store}-{name}.log")  # fmt: skip
    except Exception:
        sink.stop()
        raise
    workers: list[_WorkerProcess] = []
    try:
        for roles in shape.workers:
            log = ctx.out / f"worker-b5-{store}-{name}{'-' + roles.replace(',', '-') if roles else ''}.log"
            workers.append(_WorkerProcess({**env, "RAPPORT_WORKER_ROLES": roles} if roles else env, log))
    except Exception:
        server.stop()
        for started in workers:
            started.stop()
        sink.stop()
        raise
    latencies: list[float] = []
    entry_latencies: list[float] = []
    stages: list[str] = []  # per run: where the time of the chain goes
    label = "event -> message p99" if messages else "event -> processed p99"
    per_run_p99 = Measurement(label, "ms", higher_is_better=False)
    done_total = sent_total = 0
    try:
        warm = range(per_run * ctx.runs, per_run * ctx.runs + WARMUP)
        _warm_up(server, write_key, url, warm, sink.arrivals if messages else None)
        for run_no in range(ctx.runs):
            users = range(run_no * per_run, (run_no + 1) * per_run)
            sent = _load(server, write_key, users, rate=RATE)
            deadline = time.time() + 60
            arrivals = sink.arrivals() if messages else _entries(url, users)
            while time.time() < deadline and not set(sent) <= set(arrivals):
                time.sleep(0.2)
                arrivals = sink.arrivals() if messages else _entries(url, users)
            entered = _entries(url, users) if messages else arrivals
            if messages:
                stages.append(_stages(sent, entered, _queued(url, users), arrivals))
            run_entry = [(entered[a] - t) * 1000 for a, t in sent.items() if a in entered]
            run_latency = [(arrivals[a] - t) * 1000 for a, t in sent.items() if a in arrivals]
            entry_latencies.extend(run_entry)
            done_total += len(run_latency)
            sent_total += len(sent)
            latencies.extend(run_latency)
            if not run_latency:
                ctx.log(f"  run {run_no + 1}: 0/{len(sent)} done")
                continue
            per_run_p99.values.append(_percentile(run_latency, 0.99))
            ctx.log(f"  run {run_no + 1}: {len(run_latency)}/{len(sent)} {'messages' if messages else 'entries'}, "
                    f"p50 {_percentile(run_latency, 0.5):.0f} ms, p99 {_percentile(run_latency, 0.99):.0f} ms; "
                    f"processed p99 {_percentile(run_entry or [float('nan')], 0.99):.0f} ms"
                    + (f"; {stages[-1]}" if messages else ""))  # fmt: skip
        per_run_p99.rss_mb = server.peak_rss_mb() + sum(w.peak_rss_mb() for w in workers)
    finally:
        server.stop()
        for started in workers:
            started.stop()
        sink.stop()
        ctx.drop_store(path=path, database=database)
    if latencies:
        per_run_p99.p50_ms = _percentile(latencies, 0.5)
        per_run_p99.p99_ms = _percentile(latencies, 0.99)
    load = f"{RATE} events/s as /v1/batch of {BATCH} every {1000 * BATCH // RATE} ms"
    status = "ok" if done_total == sent_total else "failed"
    if not messages:
        where = shape.note or "the same process, API + worker"
        note = (
            f"{done_total:,}/{sent_total:,} entries; {load}; no campaigns ({where}, with nothing to deliver); "
            "processed = the segment entry's entered_at, stamped by the transaction that applied the event and "
            "updated its computed traits"
        )
        title = PROCESSING_TITLE + shape.title
        return Result(ID, title, PROCESSING_TARGET, status=status, store=store, measurement=per_run_p99,
                      note=note)  # fmt: skip
    entry = (
        f"event -> segment entry and computed traits (processed) p50 {_percentile(entry_latencies, 0.5):.0f} ms, "
        f"p99 {_percentile(entry_latencies, 0.99):.0f} ms; "
        if entry_latencies
        else ""
    )
    note = entry + (
        f"{done_total:,}/{sent_total:,} messages received; {load}; {TRIGGERS} active triggers; {sink_note}"
        + (f"; {shape.note}" if shape.note else "")
    )
    return Result(
        ID, TITLE + shape.title, TARGET, status=status, store=store, measurement=per_run_p99, note=note
    )


def build_app() -> Any:
    """uvicorn factory: Rapport as ``rapport serve`` runs it (API + in-process worker)."""
    from rapport.app import create_app
    from rapport.config import Settings
    from rapport.kit.logs import configure_logging

    configure_logging(level="WARNING", json_lines=True)
    return create_app(Settings())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sink":
        sink_main(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit("usage: python -m bench.workloads.realtime sink PORT OUTFILE")
    os._exit(0)
