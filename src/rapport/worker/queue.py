"""Enqueue, claim, finish and fail jobs.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several worker processes never take the same
job; on SQLite the claiming transaction holds the database's single write lock (``BEGIN IMMEDIATE``), which
makes every claimer take its turn. A claim is a lease: a job whose worker died is claimable again once
``locked_until`` has passed. Jobs run at least once; handlers make their effects idempotent, and the
runner commits a handler's writes and the job's completion in one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.models import Job

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
DEAD = "dead"


def enqueue(
    db: Session,
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    workspace_id: int | None = None,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
    priority: int = 100,
    max_attempts: int = 8,
    now: datetime,
) -> int | None:
    """Add a job in the caller's transaction; with a ``dedupe_key`` already used, add nothing.

    Returns the new job's id, or None when the dedupe key existed.
    """
    values = {
        "kind": kind,
        "payload": payload or {},
        "workspace_id": workspace_id,
        "dedupe_key": dedupe_key,
        "status": QUEUED,
        "priority": priority,
        "run_at": run_at or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
    }
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Job).values(**values)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = db.execute(stmt.returning(Job.id))
    return result.scalar_one_or_none()


def due_exists(db: Session, *, now: datetime, kinds: Sequence[str] | None = None) -> bool:
    """Tell whether some job is due (or its lease ran out): a read, so an idle poll takes no write lock."""
    return db.execute(_due_ids(now, kinds).limit(1)).first() is not None


def _due_ids(now: datetime, kinds: Sequence[str] | None) -> Select[int]:
    """The ids of jobs due at ``now`` (queued and due, or running with a lapsed lease), of ``kinds``."""
    due = or_(
        and_(Job.status == QUEUED, Job.run_at <= now),
        and_(Job.status == RUNNING, Job.locked_until < now),
    )
    stmt = select(Job.id).where(due)
    return stmt.where(Job.kind.in_(list(kinds))) if kinds else stmt


def claim(
    db: Session,
    *,
    worker_id: str,
    now: datetime,
    limit: int = 10,
    lease: timedelta = timedelta(minutes=5),
    kinds: Sequence[str] | None = None,
) -> list[Job]:
    """Take up to ``limit`` due jobs (or jobs whose lease ran out) for ``worker_id``; caller commits."""
    candidates = _due_ids(now, kinds).order_by(Job.priority, Job.run_at, Job.id).limit(limit)
    if db.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(status=RUNNING, locked_by=worker_id, locked_until=now + lease, attempts=Job.attempts + 1)
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    jobs = list(db.scalars(stmt).all())
    jobs.sort(key=lambda j: (j.priority, j.run_at, j.id))
    return jobs


def complete(db: Session, job: Job, *, now: datetime, result: dict[str, Any] | None = None) -> None:
    """Mark a claimed job done."""
    db.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(status=DONE, finished_at=now, locked_by=None, locked_until=None, result=result)
    )


def backoff_delay(
    attempts: int, *, base: float = 2.0, cap: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Return seconds to wait before try ``attempts + 1``: exponential with full jitter in [½, 1½]×."""
    rng = rng or random.Random()
    raw = min(cap, base * (2 ** max(0, attempts - 1)))
    return raw * (0.5 + rng.random())


def fail(
    db: Session,
    *,
    job_id: int,
    error: str,
    now: datetime,
    permanent: bool = False,
    rng: random.Random | None = None,
) -> str:
    """Record a failed try: retry later with backoff, or dead-letter it; returns the new status."""
    job = db.get(Job, job_id)
    if job is None:
        return DEAD
    if permanent or job.attempts >= job.max_attempts:
        job.status = DEAD
        job.finished_at = now
    else:
        job.status = QUEUED
        job.run_at = now + timedelta(seconds=backoff_delay(job.attempts, rng=rng))
    job.last_error = error[:4000]
    job.locked_by = None
    job.locked_until = None
    db.flush()
    return job.status


def list_jobs(
    db: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    workspace_id: int | None = None,
    limit: int = 100,
) -> Sequence[Job]:
    """Return jobs, newest first, optionally filtered."""
    stmt = select(Job)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if workspace_id is not None:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    return db.scalars(stmt.order_by(Job.id.desc()).limit(limit)).all()


def retry_dead(db: Session, *, job_id: int, now: datetime) -> bool:
    """Put a dead-lettered job back in the queue with a fresh budget of tries."""
    job = db.get(Job, job_id)
    if job is None or job.status != DEAD:
        return False
    job.status = QUEUED
    job.run_at = now
    job.attempts = 0
    job.finished_at = None
    db.flush()
    return True
