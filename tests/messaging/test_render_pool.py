"""Rendering in helper processes (messaging/render_pool.py): the same messages as inline rendering, failures
recorded the same way (R22 limits hold in the helper), and a lost helper or a killed deliverer loses and
doubles nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from rapport.app import build_deliverer, build_worker
from rapport.config import Settings
from rapport.messaging import render_pool
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer
from rapport.models import Message
from rapport.runtime import Runtime, build_runtime
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

GOOD = {
    "subject": "{{ profile.first_name }}, the winter sale is on",
    "html": "<p>Hello {{ profile.first_name | upcase }}</p><p><a href='https://shop.example/sale'>Shop</a></p>",
}
#: Over the loop cap (RenderLimits.max_loop_iterations): dead with the limit's reason, wherever it renders.
BOMB = {"subject": "Hi", "html": "{% for i in (1..50000) %}x{% endfor %}"}


def _queue(runtime: Runtime, tenant: Tenant, ids: list[int], tag: str) -> None:
    rows = [
        messaging_service.OutboxRow(pid, "email", BOMB if n % 8 == 7 else GOOD, f"{tag}:{pid}", campaign_id=1)
        for n, pid in enumerate(ids)
    ]
    with runtime.sessions() as db:
        messaging_service.enqueue_many(
            db, workspace_id=tenant.workspace_id, rows=rows, now=runtime.clock.now()
        )
        db.commit()


def _html(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def _outcome(
    runtime: Runtime, sink: SmtpSink, tag: str, expect: int
) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """What each recipient received (subject, greeting line) and the dead rows' reasons, for one run."""
    received = {}
    for m in sink.wait_for(expect):
        parsed = m.parsed()
        html = _html(parsed)
        received[m.rcpt_tos[0]] = (str(parsed["Subject"]), html[: html.index("</p>") + 4])
    with runtime.read_sessions() as db:
        reasons = set(
            db.scalars(
                select(Message.status_reason).where(
                    Message.status == "dead", Message.dedupe_key.like(f"{tag}:%")
                )
            )
        )
    return received, reasons


def test_helpers_render_what_the_deliverer_renders_itself(
    runtime: Runtime, tenant: Tenant, sink: SmtpSink, email_channel: object
) -> None:
    ids = make_people(runtime, tenant, 48)
    outcomes = []
    # 48 messages: a full claim of 50 (a backlog) goes to the helper; with claims of 100 the same batch is
    # the real-time path and renders inline even though the helper is warm
    for tag, helpers, claim, pooled_expected in (
        ("pooled", 1, 50, 48),
        ("small", 1, 100, 0),
        ("inline", 0, 50, 0),
    ):
        with sink.lock:
            sink.messages.clear()
        _queue(runtime, tenant, ids, tag)
        deliverer = Deliverer(runtime, worker_id=f"d-{tag}", batch_size=claim, render_processes=helpers)
        try:
            if deliverer.render_pool is not None:
                assert os.getpid() not in deliverer.render_pool.wait_ready()
            totals = deliverer.drain()
            pooled = deliverer.render_pool.pooled if deliverer.render_pool is not None else 0
        finally:
            deliverer.close()
        assert (totals.sent, totals.dead) == (42, 6)
        assert pooled == pooled_expected
        outcomes.append(_outcome(runtime, sink, tag, 42))
    (pooled_mail, pooled_dead), (small_mail, small_dead), (inline_mail, inline_dead) = outcomes
    assert pooled_mail == small_mail == inline_mail
    assert pooled_mail["person0@example.com"] == ("Person0, the winter sale is on", "<p>Hello PERSON0</p>")
    assert pooled_dead == small_dead == inline_dead and len(pooled_dead) == 1
    assert next(iter(pooled_dead)).startswith("render failed: html:")
    assert "loop" in next(iter(pooled_dead))


def test_a_killed_helper_loses_and_doubles_nothing(
    runtime: Runtime, tenant: Tenant, sink: SmtpSink, email_channel: object
) -> None:
    ids = make_people(runtime, tenant, 40)
    _queue(runtime, tenant, ids, "k")
    deliverer = Deliverer(runtime, worker_id="d-kill", batch_size=50, render_processes=1)  # 40: a backlog
    try:
        assert deliverer.render_pool is not None
        (helper,) = deliverer.render_pool.wait_ready()
        os.kill(helper, signal.SIGKILL)
        totals = deliverer.drain()
        assert deliverer.render_pool.rebuilt == 1
        assert deliverer.render_pool.wait_ready()[0] != helper  # a fresh helper for the next batches
    finally:
        deliverer.close()
    assert (totals.sent, totals.dead) == (35, 5)
    received = sink.wait_for(35)
    time.sleep(0.1)
    assert len(sink.messages) == 35 and len({m.rcpt_tos[0] for m in received}) == 35


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in "ZX"  # exited (a zombie until whoever adopted it reaps it)


def test_helpers_exit_when_their_deliverer_is_killed() -> None:
    script = (
        "from rapport.messaging.render_pool import RenderPool\n"
        "from rapport.personalize import TemplateEngine\n"
        "pool = RenderPool(1, TemplateEngine())\n"
        "print(pool.wait_ready()[0], flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        helper = int(parent.stdout.readline())
        assert not _gone(helper)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(helper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(helper)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_helper_whose_deliverer_died_while_it_started_exits() -> None:
    """The deliverer is killed right after starting its pool, while the helper is still importing: the
    helper must not take its adopter for its deliverer and wait for work forever."""
    script = (
        "import os, signal\n"
        "from rapport.messaging.render_pool import RenderPool\n"
        "from rapport.personalize import TemplateEngine\n"
        "pool = RenderPool(1, TemplateEngine())\n"
        "pool.start()\n"
        "print(*pool._executor._processes, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    (helper,) = (int(pid) for pid in parent.stdout.readline().split())
    parent.wait(10)
    deadline = time.monotonic() + 15
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert _gone(helper)
    finally:
        if not _gone(helper):
            os.kill(helper, signal.SIGKILL)


@pytest.mark.parametrize(("setting", "helpers"), [(0, 0), (2, 2)])
def test_the_worker_builds_its_deliverer_with_the_configured_helpers(
    settings: Settings, setting: int, helpers: int
) -> None:
    runtime = build_runtime(settings.model_copy(update={"render_processes": setting}))
    deliverer = build_deliverer(runtime, worker_id="configured")
    try:
        pool = deliverer.render_pool
        assert (pool.processes if pool is not None else 0) == helpers
        if pool is not None:
            assert os.getpid() not in pool.wait_ready()
    finally:
        deliverer.close()
        runtime.close()
    assert render_pool.resolve_processes(-1) == (1 if (os.cpu_count() or 1) >= 2 else 0)


def test_a_running_worker_starts_its_render_helpers_before_any_batch(settings: Settings) -> None:
    """The helpers start with the worker, in the background, not with the first big batch: their start
    (a process importing Rapport) then never lands in the middle of the traffic (B5's first run)."""
    runtime = build_runtime(settings.model_copy(update={"render_processes": 1, "worker_poll_seconds": 30.0}))
    worker = build_worker(runtime, ["delivery"])
    [deliverer] = [tick.__self__ for tick in worker.ticks]  # type: ignore[attr-defined]
    assert isinstance(deliverer, Deliverer) and deliverer.render_pool is not None
    assert not deliverer.render_pool.started  # built, not running: nothing spawned (drain, CLI, tests)
    worker.start_thread()
    try:
        deadline = time.monotonic() + 10
        while not deliverer.render_pool.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert deliverer.render_pool.started
        assert os.getpid() not in deliverer.render_pool.wait_ready()  # warm, and nothing was ever sent
    finally:
        worker.stop_thread()
        deliverer.close()
        runtime.close()
