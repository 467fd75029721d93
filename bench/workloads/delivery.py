"""B8: deliver a campaign of N recipients (``min(size, 100k)``) to a local SMTP sink, end to end, against
plain smtplib sending prebuilt messages to the same sink in the same run.

Rapport side, per run, in a fresh process on a fresh copy of a seeded store (SQLite file or PostgreSQL
database made from a template): the N customers exist with email consent and a daily frequency cap; the
campaign is queued as ``rapport worker``'s campaign lane queues a broadcast (``messaging.service.enqueue_many``
in chunks of ``campaigns.sending.CHUNK`` rows, each its own transaction, in a thread) while the real
``Deliverer``, built as ``rapport worker`` builds it (``app.build_deliverer``, with its render helper
processes, started before the clock like its connections; claim, checks, render, ``SmtpChannel`` with its
send journal, settle), drains the outbox from the first committed chunk on. Messages/s = N / seconds from
the first chunk to the last message settled. The sink runs in its own process: Postfix's ``smtp-sink`` (installed like ``wrk`` when missing
and running as root), else aiosmtpd (``RAPPORT_BENCH_SMTP_SINK`` forces one); it counts messages and
distinct Message-IDs: a run is valid only when it received exactly N, each once, and every outbox row is
``sent``.

Reference: one smtplib connection sending N messages prebuilt with the same MIME builder (building is not
timed) to the same sink, in the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Context, Measurement, Result, run_in_child

TITLE = "deliver a campaign to a local SMTP sink"
TARGET = ">= 2k messages/s; exactly all received"
FULL = 100_000
#: Deliverer processes of B8's second PostgreSQL row: one per core of the machine (at least 2).
PG_PROCESSES = max(2, os.cpu_count() or 2)
TEMPLATE_DB = "bench_b8_template"
SUBJECT = "{{ profile.first_name | default: 'Hello' }}, the winter sale is on"
HTML = (
    "<html><body><h1>Hello {{ profile.first_name }}</h1>"
    "<p>Our winter sale starts today at {{ profile.city | default: 'your local store' }}.</p>"
    "{% for i in (1..6) %}<p>Offer {{ i }}: something lovely you will like, at a price you will like "
    "more, only for our {{ profile.loyalty_tier | default: 'valued' }} members.</p>{% endfor %}"
    '<p><a href="https://hartleyandfinch.example/sale">Shop the sale</a></p>'
    '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p></body></html>'
)


# -- the sink: a separate process ---------------------------------------------------------------------
#
# Postfix's smtp-sink (C, event-driven) is the default: aiosmtpd, a Python server, took a whole core of
# this 2-core machine and capped both Rapport and the reference at ~900 messages/s. smtp-sink appends
# every transaction to a dump file (``-D``; it opens the file per transaction and closes it before
# answering the "."), each one after a marker line (``-S``, random per sink, so no message body can
# forge it): counting markers and distinct Message-IDs in that file proves exactly N received, each once.
# aiosmtpd stays the fallback.

SINK_ENV = "RAPPORT_BENCH_SMTP_SINK"  # "smtp-sink" or "aiosmtpd" forces one; unset: smtp-sink if possible
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def ensure_smtp_sink() -> str | None:
    """Return Postfix's smtp-sink binary, installing Debian's ``postfix`` when missing and running as root
    (preseeded "No configuration", so no mail system is set up, and no postfix daemon is left running)."""
    found = shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        capture_output=True,
        env=env,
        check=False,
    )
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"]
    for step in ([], ["apt-get", "update", "-q"]):
        if step:
            subprocess.run(step, capture_output=True, env=env, check=False)
        subprocess.run(install, capture_output=True, env=env, check=False)
        if shutil.which("smtp-sink", path="/usr/sbin:/usr/bin"):
            break
    if shutil.which("postfix", path="/usr/sbin"):  # the package may have started its daemon: stop it
        running = subprocess.run(["/usr/sbin/postfix", "status"], capture_output=True, check=False)
        if running.returncode == 0:
            subprocess.run(["/usr/sbin/postfix", "stop"], capture_output=True, check=False)
    return shutil.which("smtp-sink", path="/usr/sbin:/usr/bin")


def count_dump(data: bytes, marker: bytes) -> tuple[int, int]:
    """Return (messages, distinct Message-IDs) in an smtp-sink dump whose messages each start with a
    ``marker`` line; a message's Message-ID is the first one in its header (a body quoting one is not)."""
    parts = data.split(b"\n" + marker + b"\n")[1:]
    ids = set()
    for part in parts:
        head = part.split(b"\n\n", 1)[0]  # the sink's lines and the message header, up to the blank line
        found = _MESSAGE_ID.search(head)
        if found:
            ids.add(found.group(1))
    return len(parts), len(ids)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sink_main() -> None:
    """Child: an aiosmtpd server on 127.0.0.1 counting messages and Message-IDs; stdin commands
    ``count`` (answers ``<messages> <distinct ids>``), ``reset`` and ``quit``."""
    import threading

    from aiosmtpd.controller import Controller

    ids: set[bytes] = set()
    counter = [0]
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            head = envelope.content[:4096]
            found = _MESSAGE_ID.search(head)
            with lock:
                counter[0] += 1
                if found:
                    ids.add(found.group(1))
            return "250 2.0.0 Ok: queued as B8"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    controller.start()
    print(f"port {port}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            with lock:
                print(f"{counter[0]} {len(ids)}", flush=True)
        elif command == "reset":
            with lock:
                counter[0] = 0
                ids.clear()
            print("ok", flush=True)
        elif command == "quit":
            break
    controller.stop()


class AiosmtpdSink:
    """The aiosmtpd sink process, seen from the parent."""

    name = "aiosmtpd"

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from bench.workloads.delivery import sink_main; sink_main()"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])

    def _ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def reset(self) -> None:
        """Forget what was received."""
        self._ask("reset")

    def count(self) -> tuple[int, int]:
        """Return (messages, distinct Message-IDs) received since the last reset."""
        messages, distinct = self._ask("count").split()
        return int(messages), int(distinct)

    def close(self) -> None:
        """Stop the sink process."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


class PostfixSink:
    """Postfix's smtp-sink in its own process, dumping every transaction to a file that ``count`` reads."""

    name = "smtp-sink"

    def __init__(self, binary: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rapport-b8-sink-"))
        self.dump = self.dir / "dump"
        self.marker = f"=B8-SINK-{uuid.uuid4().hex}=".encode()
        command = [binary, "-D", str(self.dump), "-S", "\\n" + self.marker.decode() + "\\n"]
        if os.geteuid() == 0:  # smtp-sink refuses to run as root without -u; the dump is written as nobody
            user = pwd.getpwnam("nobody")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            command += ["-u", "nobody"]
        for _attempt in range(5):  # the port is free a moment before smtp-sink binds it: retry a clash
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [*command, f"127.0.0.1:{self.port}", "256"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._listening():
                return
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        raise RuntimeError("smtp-sink did not start listening")

    def _listening(self) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.recv(256)  # the greeting
                return True
            time.sleep(0.05)
        return False

    def reset(self) -> None:
        """Forget what was received (smtp-sink opens the dump per transaction, so removing it is safe
        between runs)."""
        self.dump.unlink(missing_ok=True)

    def count(self) -> tuple[int, int]:
        """Return (messages, distinct Message-IDs) in the dump since the last reset, once it stops growing."""
        seen = -1
        for _ in range(50):
            size = self.dump.stat().st_size if self.dump.exists() else 0
            if size == seen:
                break
            seen = size
            time.sleep(0.1)
        return count_dump(self.dump.read_bytes(), self.marker) if self.dump.exists() else (0, 0)

    def close(self) -> None:
        """Stop smtp-sink and remove its dump."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


Sink = AiosmtpdSink | PostfixSink


def start_sink(log: Any = print) -> tuple[Sink, str]:
    """Start the sink B8 uses and return it with a note on which one runs (and why, for the fallback)."""
    wanted = os.environ.get(SINK_ENV, "").strip()
    if wanted not in ("", "smtp-sink", "aiosmtpd"):
        raise ValueError(f"{SINK_ENV} must be smtp-sink or aiosmtpd, not {wanted!r}")
    if wanted == "aiosmtpd":
        return AiosmtpdSink(), f"sink aiosmtpd in its own process ({SINK_ENV}=aiosmtpd)"
    binary = ensure_smtp_sink()
    if binary is None:
        if wanted:
            raise RuntimeError("smtp-sink is not installed and cannot be installed here")
        log("  B8: Postfix smtp-sink not available, falling back to aiosmtpd")
        return AiosmtpdSink(), "sink aiosmtpd in its own process (smtp-sink not available)"
    version = _postfix_version()
    return PostfixSink(binary), f"sink Postfix smtp-sink {version} in its own process, dump-counted"


def _postfix_version() -> str:
    found = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "postfix"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else "(version unknown)"


# -- the store ----------------------------------------------------------------------------------------


def _runtime(url: str, *, spool: str = "") -> Any:
    from rapport.config import Settings
    from rapport.runtime import build_runtime

    settings = Settings(
        database_url=url,
        secret_key="bench-secret-0123456789",
        log_level="WARNING",
        db_pool_size=4,
        run_worker_in_process=False,
        base_url="https://rapport.example",
        email_from="news@hartleyandfinch.example",
        spool_dir=spool or str(ROOT / "bench" / "out" / "b8-spool"),
    )
    return build_runtime(settings)


def seed_store(url: str, recipients: int, seed: int) -> dict[str, Any]:
    """Child: N customers with email consent (setup, not timed) and a 3-a-day email cap."""
    from sqlalchemy import select

    from rapport.accounts import service as accounts_service
    from rapport.collect.importer import import_profile_rows
    from rapport.db import migrate
    from rapport.kit.logs import configure_logging
    from rapport.models import Identity, Subscription, Workspace
    from rapport.synth.generator import SynthSpec, iter_profiles

    configure_logging(level="WARNING", json_lines=False)
    runtime = _runtime(url)
    migrate.upgrade(runtime.engine)
    with runtime.sessions() as db:
        ws = accounts_service.create_workspace(db, name="Hartley & Finch", slug="bench")
        db.commit()
        workspace_id = int(ws.id)
    report = import_profile_rows(
        runtime, workspace_id=workspace_id, rows=iter_profiles(SynthSpec(profiles=recipients, seed=seed))
    )
    now = runtime.clock.now()
    with runtime.sessions() as db:
        workspace = db.get(Workspace, workspace_id)
        assert workspace is not None
        workspace.settings = {**(workspace.settings or {}), "caps": {"email": {"day": 3}}}
        ids = list(
            db.scalars(
                select(Identity.profile_id).where(
                    Identity.workspace_id == workspace_id, Identity.kind == "user_id"
                )
            )
        )
        db.bulk_insert_mappings(
            Subscription,
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
    runtime.close()
    return {"workspace_id": workspace_id, "profiles": report.imported, "subscribed": len(ids)}


def _deliverer(url: str, port: int, spool: str, worker_id: str) -> tuple[Any, Any, Any]:
    """A runtime wired as ``rapport worker`` wires it, an SMTP channel to the sink, and a Deliverer."""
    from rapport.app import build_deliverer, wire_runtime
    from rapport.channels.email import SmtpChannel, SmtpConfig
    from rapport.kit.logs import configure_logging
    from rapport.messaging.delivery import channels_of

    configure_logging(level="WARNING", json_lines=False)
    runtime = _runtime(url, spool=spool)
    wire_runtime(runtime)
    channel = SmtpChannel(SmtpConfig(host="127.0.0.1", port=port, pool_size=4), id_domain="rapport.example")
    channels_of(runtime)["email"] = channel
    deliverer = build_deliverer(runtime, worker_id=worker_id)  # as ``rapport worker`` builds it
    if deliverer.render_pool is not None:  # started (imports, engine) before the clock, like connections
        deliverer.render_pool.wait_ready()
    return runtime, channel, deliverer


def drain_worker(url: str, port: int, spool: str, worker_id: str, go: str) -> dict[str, Any]:
    """Child (one of several deliverer processes): get ready (imports, connections), write ``go``.ready,
    wait for the file ``go``, then drain the outbox; return the wall-clock end and what it sent."""
    from sqlalchemy import text

    runtime, channel, deliverer = _deliverer(url, port, spool, worker_id)
    with runtime.read_sessions() as db:  # a pooled connection, opened before the clock starts
        db.execute(text("SELECT 1"))
    Path(go + f".{worker_id}.ready").touch()
    parent, deadline = os.getppid(), time.monotonic() + 600
    while not Path(go).exists():  # the queuing process says go as it starts queuing the campaign
        if os.getppid() != parent or time.monotonic() > deadline:  # it died or gave up: do not linger
            raise SystemExit("no go from the queuing process")
        time.sleep(0.001)

    def queued() -> bool:
        if os.getppid() != parent:
            raise SystemExit("the queuing process died")
        return Path(go + ".queued").exists()

    sent = drain_while_queuing(deliverer, queued)
    ended = time.time()
    deliverer.close()
    channel.close()
    runtime.close()
    return {"ended": ended, "sent": sent}


def drain_while_queuing(deliverer: Any, queued: Any) -> int:
    """Drain the outbox while the campaign is being queued: go on until the queuing is over (``queued()``
    was true before a drain began) and that drain found nothing more; returns the messages sent."""
    sent = 0
    while True:
        over = queued()
        stats = deliverer.drain()
        sent += stats.sent
        if stats.claimed == 0:
            if over:
                return sent
            time.sleep(0.002)  # caught up with the queuing: look again shortly


def queue_in_chunks(
    runtime: Any, workspace_id: int, rows: list[Any], out: dict[str, Any], chunk: int = 0
) -> None:
    """The campaign lane of ``rapport worker``: queue ``rows`` ``chunk`` (default ``sending.CHUNK``) at a time with
    ``enqueue_many``, each chunk its own transaction (as ``campaigns.sending.send_chunk`` queues a
    broadcast), while the delivery lane sends; records how many were new and when the last committed."""
    from rapport.campaigns.sending import CHUNK
    from rapport.messaging import service as messaging_service

    chunk = chunk or CHUNK
    try:
        queued = 0
        for start in range(0, len(rows), chunk):
            with runtime.sessions() as db:
                queued += messaging_service.enqueue_many(
                    db, workspace_id=workspace_id, rows=rows[start : start + chunk], now=runtime.clock.now()
                )
                db.commit()
        out["queued"], out["chunks"] = queued, -(-len(rows) // chunk)
    except BaseException as exc:  # reported by the caller; the drain stops once this lane has ended
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        out["queued_at"] = time.perf_counter()


def _stop_workers(procs: list[subprocess.Popen[str]]) -> None:
    """Kill and reap every deliverer process still running (a failed run leaves none behind)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _start_workers(url: str, port: int, spool: str, processes: int, go: Path) -> list[subprocess.Popen[str]]:
    """Start ``processes`` deliverer processes (``drain_worker``) and wait until each is ready."""
    procs = []
    for k in range(processes):
        payload = json.dumps(
            {
                "target": f"{__name__}:drain_worker",
                "kwargs": {
                    "url": url,
                    "port": port,
                    "spool": spool,
                    "worker_id": f"bench-b8-{k}",
                    "go": str(go),
                },
            }
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.child", payload],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.bench-b8-{k}.ready").exists() for k in range(processes)):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise RuntimeError("a deliverer process did not start: " + _stderr_tail(procs))
        time.sleep(0.01)
    return procs


def _stderr_tail(procs: list[subprocess.Popen[str]]) -> str:
    for p in procs:
        if p.poll() is not None and p.returncode != 0 and p.stderr is not None:
            lines = [line for line in p.stderr.read().splitlines() if line.strip()]
            return lines[-1][:300] if lines else str(p.returncode)
    return "timed out"


def _finish_workers(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Collect every deliverer's result (their pipes drained in threads, so none blocks on a full pipe)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(procs)) as pool:
        answers = list(pool.map(lambda p: p.communicate(timeout=3600), procs))
    outs = []
    for p, (stdout, stderr) in zip(procs, answers, strict=True):
        if p.returncode != 0:
            lines = [line for line in stderr.splitlines() if line.strip()]
            raise RuntimeError(f"a deliverer process failed: {lines[-1][:300] if lines else p.returncode}")
        outs.append(dict(json.loads(stdout.strip().splitlines()[-1])))
    return outs


def deliver_campaign(
    url: str, workspace_id: int, port: int, spool: str, processes: int = 1, chunk: int = 0
) -> dict[str, Any]:
    """Child: queue the campaign with enqueue_many and drain it with the Deliverer; return timings.

    ``processes`` > 1 (PostgreSQL: production runs several ``rapport worker`` processes against one
    database): that many deliverer processes, started and connected before the clock starts, drain the
    outbox together (``SKIP LOCKED`` claims) while this process only queues."""
    runtime, channel, deliverer = _deliverer(url, port, spool, "bench-b8")
    go = Path(spool) / f"go-{uuid.uuid4().hex}"
    procs = []
    if processes > 1:
        Path(spool).mkdir(parents=True, exist_ok=True)
        procs = _start_workers(url, port, spool, processes, go)
    try:
        return _queue_and_deliver(runtime, channel, deliverer, workspace_id, procs, go, processes, chunk)
    finally:
        _stop_workers(procs)


def _queue_and_deliver(
    runtime: Any,
    channel: Any,
    deliverer: Any,
    workspace_id: int,
    procs: list[subprocess.Popen[str]],
    go: Path,
    processes: int,
    chunk: int,
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from rapport.messaging import service as messaging_service
    from rapport.models import Message, Profile

    with runtime.read_sessions() as db:
        audience = list(db.scalars(select(Profile.id).where(Profile.workspace_id == workspace_id)))
    content = {"subject": SUBJECT, "html": HTML, "campaign": {"id": 1, "name": "Winter Sale"}}
    rows = [
        messaging_service.OutboxRow(pid, "email", content, f"c1:{pid}:email", campaign_id=1)
        for pid in audience
    ]
    queuing: dict[str, Any] = {}
    lane = threading.Thread(target=queue_in_chunks, args=(runtime, workspace_id, rows, queuing, chunk))
    started = time.perf_counter()
    if procs:
        started_wall = time.time()
        go.touch()
    lane.start()
    if procs:
        lane.join()
        Path(str(go) + ".queued").touch()
        outs = _finish_workers(procs)
        finished = started + max(o["ended"] for o in outs) - started_wall
        sent_by = [int(o["sent"]) for o in outs]
        workers_rss = sum(float(o.get("rss_mb", 0.0)) for o in outs)
    else:
        sent_by = [drain_while_queuing(deliverer, lambda: not lane.is_alive())]
        finished = time.perf_counter()
        workers_rss = 0.0
    lane.join()
    if "error" in queuing:
        raise RuntimeError(f"queuing the campaign failed: {queuing['error']}")
    deliverer.close()
    channel.close()
    with runtime.read_sessions() as db:
        statuses = dict(
            db.execute(
                select(Message.status, func.count())
                .where(Message.workspace_id == workspace_id)
                .group_by(Message.status)
            ).all()
        )
        not_sent = [
            f"{status}: {reason}"
            for status, reason in db.execute(
                select(Message.status, Message.status_reason)
                .where(Message.workspace_id == workspace_id, Message.status != "sent")
                .limit(3)
            ).all()
        ]
    runtime.close()
    return {
        "queued": queuing["queued"],
        "chunks": queuing["chunks"],
        "queue_seconds": queuing["queued_at"] - started,
        "seconds": finished - started,
        "after_queued_seconds": finished - queuing["queued_at"],
        "sent": sum(sent_by),
        "sent_by": sent_by,
        "processes": processes,
        "workers_rss_mb": workers_rss,
        "statuses": {str(k): int(v) for k, v in statuses.items()},
        "not_sent": not_sent,
    }


def smtplib_reference(port: int, recipients: int) -> dict[str, Any]:
    """Child: build N messages with the same builder (not timed), send them over one smtplib connection."""
    import smtplib

    from rapport.channels.base import EmailPayload
    from rapport.channels.mime import build_email

    messages = []
    for i in range(recipients):
        payload = EmailPayload(
            subject=f"Person{i}, the winter sale is on",
            from_address="news@hartleyandfinch.example",
            from_name="Hartley & Finch",
            html=f"<html><body><h1>Hello Person{i}</h1>" + "<p>Offer</p>" * 40 + "</body></html>",
            text=f"Hello Person{i}\n" + "Offer\n" * 40,
            unsubscribe_url=f"https://rapport.example/u/tok{i:08d}",
        )
        to = f"person{i}@example.com"
        messages.append(
            (to, build_email(payload, to=to, message_id=f"ref{i:08d}", id_domain="rapport.example"))
        )
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port)
    for to, data in messages:
        smtp.sendmail("news@hartleyandfinch.example", [to], data)
    smtp.quit()
    return {"seconds": time.perf_counter() - started, "sent": len(messages), "bytes": len(messages[-1][1])}


class _Store:
    """A seeded template of one kind and fresh copies of it, one per run."""

    def __init__(self, ctx: Context, kind: str, recipients: int) -> None:
        self.ctx, self.kind, self.n = ctx, kind, 0
        self.dir = ctx.out / "b8"
        self.dir.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite":
            self.template = self.dir / "template.db"
            url = f"sqlite:///{self.template}"
        else:
            self.server = ctx.pg_server()
            url = self.server.create_database(TEMPLATE_DB)
        started = time.perf_counter()
        self.meta = run_in_child(f"{__name__}:seed_store", url=url, recipients=recipients, seed=ctx.seed)
        ctx.log(
            f"  B8 {kind}: seeded {self.meta['profiles']:,} customers with consent in "
            f"{time.perf_counter() - started:.0f} s"
        )

    def new_url(self) -> str:
        """Return a fresh copy of the seeded store."""
        self.n += 1
        if self.kind == "sqlite":
            for old in self.dir.glob("run-*.db*"):
                old.unlink()
            target = self.dir / f"run-{self.n}.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        if self.n > 1:
            self.server.drop_database(f"bench_b8_run_{self.n - 1}")
        return str(self.server.create_database(f"bench_b8_run_{self.n}", template=TEMPLATE_DB))

    def cleanup(self) -> None:
        """Drop what the runs made."""
        if self.kind == "sqlite":
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        self.server.drop_database(f"bench_b8_run_{self.n}")
        self.server.drop_database(TEMPLATE_DB)


def _run_store(
    ctx: Context, kind: str, recipients: int, sink: Sink, sink_note: str, processes: int = 1
) -> Result:
    store = _Store(ctx, kind, recipients)
    label = "Rapport enqueue_many + Deliverer + SmtpChannel"
    mine = Measurement(label if processes == 1 else f"{label}, {processes} deliverer processes", "messages/s")
    ref = Measurement("smtplib, prebuilt messages, 1 connection", "messages/s")
    tails: list[float] = []
    queues: list[float] = []
    problems: list[str] = []
    spool = ctx.out / "b8-spool"
    try:
        for run_no in range(ctx.runs):
            sink.reset()
            out = run_in_child(
                f"{__name__}:deliver_campaign",
                url=store.new_url(),
                workspace_id=store.meta["workspace_id"],
                port=sink.port,
                spool=str(spool),
                processes=processes,
            )
            received, distinct = sink.count()
            seconds = out["seconds"]
            if received != recipients or distinct != recipients or out["statuses"] != {"sent": recipients}:
                problems.append(
                    f"run {run_no + 1}: received {received}, distinct {distinct}, {out['statuses']} "
                    f"{out['not_sent']}"
                )
            mine.values.append(recipients / seconds)
            mine.rss_mb = max(mine.rss_mb or 0.0, out["rss_mb"] + out.get("workers_rss_mb", 0.0))
            tails.append(out["after_queued_seconds"])
            queues.append(out["queue_seconds"])
            ctx.log(
                f"  B8 {kind} run {run_no + 1}/{ctx.runs}: queued {out['queued']:,} in {out['chunks']} chunks "
                f"in {out['queue_seconds']:.1f} s while delivering, all delivered in {seconds:.1f} s, "
                f"{recipients / seconds:,.0f} msg/s; sink got "
                f"{received:,} ({distinct:,} distinct)"
            )
            sink.reset()
            ref_out = run_in_child(f"{__name__}:smtplib_reference", port=sink.port, recipients=recipients)
            received, distinct = sink.count()
            if received != recipients or distinct != recipients:
                problems.append(f"reference run {run_no + 1}: received {received}, distinct {distinct}")
            ref.values.append(recipients / ref_out["seconds"])
            ctx.log(f"  B8 reference run {run_no + 1}: {recipients / ref_out['seconds']:,.0f} msg/s")
    finally:
        store.cleanup()
        shutil.rmtree(spool, ignore_errors=True)
    note = (
        f"{recipients:,} recipients; queued in chunks of 2,000 while delivering in "
        f"{min(queues):.1f}-{max(queues):.1f} s, the last delivered {min(tails):.1f}-{max(tails):.1f} s "
        f"later; {sink_note}; "
        f"{'EXACTLY ALL RECEIVED' if not problems else 'PROBLEMS: ' + '; '.join(problems)[:300]}"
    )
    status = "ok" if not problems else "failed"
    title = TITLE if processes == 1 else f"{TITLE}, {processes} worker processes (production shape)"
    return Result("B8", title, TARGET, status=status, store=kind, measurement=mine, reference=ref, note=note)


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Run B8 on each store: the campaign and the smtplib reference, alternating, ctx.runs times."""
    recipients = min(ctx.size, FULL)
    results = []
    sink, sink_note = start_sink(ctx.log)
    ctx.log(f"  B8: {sink_note}")
    try:
        for kind in ctx.stores:
            # PostgreSQL also in its production shape: one deliverer process per core, claiming with SKIP
            # LOCKED (SQLite has a single claimer by design)
            for processes in (1, PG_PROCESSES) if kind == "postgresql" else (1,):
                try:
                    results.append(_run_store(ctx, kind, recipients, sink, sink_note, processes))
                except Exception as exc:  # one store failing must not hide the other's figures
                    ctx.log(f"  B8 {kind} ({processes} processes) failed: {exc}")
                    title = (
                        TITLE
                        if processes == 1
                        else f"{TITLE}, {processes} worker processes (production shape)"
                    )
                    results.append(
                        Result("B8", title, TARGET, status="failed", store=kind, note=str(exc)[:300])
                    )
    finally:
        sink.close()
    return results
