"""The database-backed queue: claims are exclusive, failures back off, dead letters keep their error."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from rapport.audit import service as audit_service
from rapport.kit.clock import FakeClock
from rapport.models import AuditEntry, Job
from rapport.runtime import Runtime
from rapport.worker import queue
from rapport.worker.runner import HandlerRegistry, JobContext, PermanentJobError, Worker


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _enqueue(runtime: Runtime, n: int, kind: str = "t.job", **kw: object) -> list[int]:
    ids = []
    with runtime.sessions() as db:
        for i in range(n):
            job_id = queue.enqueue(db, kind=kind, payload={"i": i}, now=runtime.clock.now(), **kw)  # type: ignore[arg-type]
            assert job_id is not None
            ids.append(job_id)
        db.commit()
    return ids


def test_a_job_runs_once_and_is_marked_done(runtime: Runtime) -> None:
    seen: list[int] = []

    def handler(ctx: JobContext) -> dict[str, bool]:
        seen.append(ctx.job.payload["i"])
        return {"ok": True}

    registry = HandlerRegistry()
    registry.register("t.job", handler)
    _enqueue(runtime, 3)
    worker = Worker(runtime, registry)
    assert worker.drain() == 3
    assert sorted(seen) == [0, 1, 2]
    assert worker.drain() == 0
    with runtime.read_sessions() as db:
        jobs = db.scalars(select(Job)).all()
        assert {j.status for j in jobs} == {"done"}
        assert all(j.result == {"ok": True} and j.attempts == 1 for j in jobs)


def test_dedupe_key_makes_enqueue_idempotent(runtime: Runtime) -> None:
    with runtime.sessions() as db:
        first = queue.enqueue(db, kind="t.job", dedupe_key="import:7", now=runtime.clock.now())
        second = queue.enqueue(db, kind="t.job", dedupe_key="import:7", now=runtime.clock.now())
        db.commit()
    assert first is not None and second is None
    with runtime.read_sessions() as db:
        assert db.scalar(select(func.count()).select_from(Job)) == 1


def test_jobs_wait_for_their_time(runtime: Runtime, clock: FakeClock) -> None:
    registry = HandlerRegistry()
    registry.register("t.job", lambda ctx: None)
    with runtime.sessions() as db:
        queue.enqueue(db, kind="t.job", run_at=clock.now() + timedelta(minutes=10), now=clock.now())
        db.commit()
    worker = Worker(runtime, registry)
    assert worker.drain() == 0
    clock.advance(timedelta(minutes=11))
    assert worker.drain() == 1


def test_handler_writes_roll_back_with_a_failure_and_the_job_backs_off(
    runtime: Runtime, clock: FakeClock
) -> None:
    def handler(ctx: JobContext) -> None:
        audit_service.record(ctx.db, workspace_id=None, actor="job", action="half.done")
        raise RuntimeError("provider timeout")

    registry = HandlerRegistry()
    registry.register("t.job", handler)
    (job_id,) = _enqueue(runtime, 1, max_attempts=3)
    worker = Worker(runtime, registry, rng=random.Random(1))
    assert worker.drain() == 1
    with runtime.read_sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None
        assert job.status == "queued" and job.attempts == 1
        assert "provider timeout" in (job.last_error or "")
        delay = (job.run_at - clock.now()).total_seconds()
        assert 1.0 <= delay <= 3.0  # 2 s base, jitter in [0.5, 1.5]
        assert db.scalar(select(func.count()).select_from(AuditEntry)) == 0  # the half-done write is gone
    # Retries back off exponentially, then the job is dead-lettered with its error.
    for _ in range(2):
        clock.advance(timedelta(hours=2))
        assert worker.drain() == 1
    with runtime.read_sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.status == "dead" and job.attempts == 3
        assert "provider timeout" in (job.last_error or "")
    clock.advance(timedelta(days=1))
    assert worker.drain() == 0
    with runtime.sessions() as db:
        assert queue.retry_dead(db, job_id=job_id, now=clock.now())
        db.commit()
    assert worker.drain() == 1


def test_permanent_errors_dead_letter_at_once(runtime: Runtime) -> None:
    def handler(ctx: JobContext) -> None:
        raise PermanentJobError("template does not exist")

    registry = HandlerRegistry()
    registry.register("t.job", handler)
    (job_id,) = _enqueue(runtime, 1)
    Worker(runtime, registry).drain()
    with runtime.read_sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.status == "dead" and job.attempts == 1
        assert job.last_error == "PermanentJobError: template does not exist"


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        raw = min(3600.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(20):
            assert 0.5 * raw <= queue.backoff_delay(attempt, rng=rng) <= 1.5 * raw


def test_a_dead_workers_lease_expires_and_the_job_is_taken_again(runtime: Runtime, clock: FakeClock) -> None:
    (job_id,) = _enqueue(runtime, 1)
    with runtime.sessions() as db:
        taken = queue.claim(db, worker_id="crashed", now=clock.now(), lease=timedelta(minutes=5))
        db.commit()
    assert [j.id for j in taken] == [job_id]
    with runtime.sessions() as db:
        assert queue.claim(db, worker_id="other", now=clock.now()) == []
        db.commit()
    clock.advance(timedelta(minutes=6))
    with runtime.sessions() as db:
        again = queue.claim(db, worker_id="other", now=clock.now())
        db.commit()
    assert [j.id for j in again] == [job_id]
    assert again[0].attempts == 2 and again[0].locked_by == "other"


def test_concurrent_workers_never_run_a_job_twice(runtime: Runtime) -> None:
    """R7's mechanism: 4 workers on their own connections claim 400 jobs; each runs exactly once."""
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(ctx: JobContext) -> None:
        with lock:
            ran[ctx.job.id] += 1

    registry = HandlerRegistry()
    registry.register("t.job", handler)
    ids = _enqueue(runtime, 400)
    workers = [Worker(runtime, registry, worker_id=f"w{i}", batch_size=7) for i in range(4)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(ran) == sorted(ids)
    assert set(ran.values()) == {1}
    with runtime.read_sessions() as db:
        assert set(db.scalars(select(Job.status)).all()) == {"done"}


def test_due_exists_sees_what_claim_would_take(runtime: Runtime, clock: FakeClock) -> None:
    def due(kinds: list[str] | None = None) -> bool:
        with runtime.read_sessions() as db:
            return queue.due_exists(db, now=clock.now(), kinds=kinds)

    assert not due()
    with runtime.sessions() as db:
        queue.enqueue(db, kind="t.later", run_at=clock.now() + timedelta(minutes=10), now=clock.now())
        db.commit()
    assert not due()  # not yet
    clock.advance(timedelta(minutes=11))
    assert due() and due(["t.later"]) and not due(["t.other"])
    with runtime.sessions() as db:
        assert len(queue.claim(db, worker_id="crashed", now=clock.now(), lease=timedelta(minutes=5))) == 1
        db.commit()
    assert not due()  # leased
    clock.advance(timedelta(minutes=6))
    assert due()  # the lease ran out: claimable again


def test_an_idle_poll_takes_no_write_lock(runtime: Runtime) -> None:
    from sqlalchemy import event as sa_event

    writes: list[str] = []

    def watch(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE", "BEGIN IMMEDIATE")):
            writes.append(statement)

    registry = HandlerRegistry()
    registry.register("t.job", lambda ctx: None)
    worker = Worker(runtime, registry)
    sa_event.listen(runtime.engine, "before_cursor_execute", watch)
    try:
        assert worker.run_jobs() == 0
        assert writes == []
        _enqueue(runtime, 1)
        writes.clear()
        assert worker.run_jobs() == 1
        assert any(w.lstrip().upper().startswith("UPDATE") for w in writes)
    finally:
        sa_event.remove(runtime.engine, "before_cursor_execute", watch)
