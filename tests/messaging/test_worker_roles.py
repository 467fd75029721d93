"""``rapport worker --role``: a worker process runs only what it is given (events, delivery, jobs), and on
PostgreSQL a deliverer in a process of its own is woken by the transaction that queues a message."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from rapport.app import build_worker, parse_roles
from rapport.collect import ingest
from rapport.collect import normalize as norm
from rapport.config import Settings
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer
from rapport.models import Event, Job, Message
from rapport.models.event import PENDING
from rapport.process.traits_service import RECOMPUTE_JOB
from rapport.runtime import Runtime, build_runtime
from rapport.worker import queue as job_queue
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant
from tests.test_cli import cli


def _queue_message(runtime: Runtime, tenant: Tenant, profile_id: int, key: str) -> None:
    with runtime.sessions() as db:
        made = messaging_service.enqueue(
            db,
            workspace_id=tenant.workspace_id,
            profile_id=profile_id,
            channel="email",
            kind="service",  # never deferred by quiet hours, whatever the time of the run
            content={"subject": f"Order {key}", "text": "Your order is on its way."},
            dedupe_key=key,
            now=runtime.clock.now(),
        )
        db.commit()
    assert made is not None


def _queue_job(runtime: Runtime, tenant: Tenant) -> int:
    with runtime.sessions() as db:
        job_id = job_queue.enqueue(
            db, kind=RECOMPUTE_JOB, payload={"workspace_id": tenant.workspace_id},
            workspace_id=tenant.workspace_id, now=runtime.clock.now(),
        )  # fmt: skip
        db.commit()
    assert job_id is not None
    return job_id


def _write_event(runtime: Runtime, tenant: Tenant) -> None:
    result = norm.normalize(
        {"type": "track", "event": "Viewed", "userId": "p0", "messageId": "roles-1"},
        received_at=runtime.clock.now(),
    )
    assert isinstance(result, norm.Normalized), result
    row = {"workspace_id": tenant.workspace_id, **result.row}
    ingest.write_works(runtime.engine, [ingest.IngestWork(events=[row])])


def _states(runtime: Runtime, job_id: int) -> tuple[list[str], list[str], list[int]]:
    with runtime.read_sessions() as db:
        return (
            list(db.scalars(select(Message.status))),
            list(db.scalars(select(Job.status).where(Job.id == job_id))),
            list(db.scalars(select(Event.state).where(Event.message_id == "roles-1"))),
        )


def test_a_worker_runs_only_its_roles(runtime: Runtime, tenant: Tenant, sink: SmtpSink, db_url: str) -> None:
    [pid] = make_people(runtime, tenant, 1)
    _queue_message(runtime, tenant, pid, "o1")
    job_id = _queue_job(runtime, tenant)
    _write_event(runtime, tenant)
    env = {
        "RAPPORT_SMTP_HOST": sink.host,
        "RAPPORT_SMTP_PORT": str(sink.port),
        "RAPPORT_SECRET_KEY": "k" * 32,
    }

    cli("worker", "--once", "--role", "delivery", database_url=db_url, env=env)
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ["person0@example.com"]
    messages, jobs, events = _states(runtime, job_id)
    assert messages == ["sent"]
    assert jobs == ["queued"]  # not this worker's: no jobs lane
    assert events == [PENDING]  # nor the event processor

    # the roles as the environment gives them, several in one value
    cli("worker", "--once", database_url=db_url, env={**env, "RAPPORT_WORKER_ROLES": "events,jobs"})
    messages, jobs, events = _states(runtime, job_id)
    assert jobs == ["done"] and events != [PENDING]
    assert len(sink.messages) == 1


def test_an_unknown_role_is_refused_with_the_known_ones(db_url: str) -> None:
    result = cli("worker", "--once", "--role", "delivery,sending", database_url=db_url, check=False)
    assert result.exit_code == 2
    assert "unknown worker role sending" in result.output and "events, delivery, jobs" in result.output
    with pytest.raises(ValueError, match="at least one"):
        parse_roles([" , "])


def test_a_delivery_worker_elsewhere_is_woken_by_the_queueing_transaction(
    runtime: Runtime, tenant: Tenant, sink: SmtpSink, settings: Settings
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip(
            "LISTEN/NOTIFY is PostgreSQL's; on SQLite one process delivers and its lanes wake each other"
        )
    [pid] = make_people(runtime, tenant, 1)
    # the delivery worker has its own runtime (engine, connections, lanes) as another process would, and a
    # poll 30 s away: only the notification can make it deliver within seconds
    elsewhere = build_runtime(
        settings.model_copy(
            update={"worker_poll_seconds": 30.0, "smtp_host": sink.host, "smtp_port": sink.port}
        )
    )
    worker = build_worker(elsewhere, ["delivery"])
    assert [type(tick.__self__) for tick in worker.ticks] == [Deliverer]  # type: ignore[attr-defined]
    assert not worker.jobs
    worker.start_thread()
    try:
        time.sleep(1.0)  # its first round and LISTEN's look at what was queued before, then idle
        for n in range(3):
            queued = time.monotonic()
            _queue_message(runtime, tenant, pid, f"w{n}")
            sink.wait_for(n + 1, timeout=10)
            assert time.monotonic() - queued < 3.0
    finally:
        worker.stop_thread()
        elsewhere.close()
    assert [m.rcpt_tos for m in sink.messages] == [["person0@example.com"]] * 3
