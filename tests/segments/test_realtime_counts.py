"""The real-time hook keeps a segment's member count by difference (no recount per batch), exactly, on both
databases; a trigger test of the batch's event names lives with the campaigns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.kit.clock import Clock, FakeClock
from rapport.models import Segment, SegmentMember
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    """A fixed clock."""
    return FakeClock(START)


def _counts(runtime: Runtime, segment_id: int) -> tuple[int | None, int]:
    with runtime.read_sessions() as db:
        stored = db.scalar(select(Segment.member_count).where(Segment.id == segment_id))
        actual = db.scalar(
            select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_id == segment_id)
        )
    return stored, int(actual or 0)


def test_member_count_follows_entries_and_exits(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    def identify(batch: list[tuple[str, str]]) -> None:
        body = {"batch": [{"type": "identify", "userId": u, "traits": {"plan": plan}} for u, plan in batch]}
        answer = client.post("/v1/batch", json=body, headers=tenant.write_headers)
        assert answer.status_code == 200, answer.text
        client.app.state.worker.drain()  # type: ignore[attr-defined]

    identify([("u0", "free"), ("u1", "free")])
    answer = client.post(
        "/api/v1/segments", json={"name": "Pro", "text": 'plan = "pro"'}, headers=tenant.secret_headers
    )
    assert answer.status_code == 201, answer.text
    segment_id = int(answer.json()["id"])
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    assert _counts(runtime, segment_id) == (0, 0)

    identify([("u0", "pro"), ("u1", "pro"), ("u2", "pro"), ("u3", "free")])  # three enter
    assert _counts(runtime, segment_id) == (3, 3)
    identify([("u1", "free"), ("u4", "pro"), ("u5", "pro")])  # one leaves, two enter
    assert _counts(runtime, segment_id) == (4, 4)
    identify([("u0", "free"), ("u2", "free"), ("u4", "free"), ("u5", "free")])
    assert _counts(runtime, segment_id) == (0, 0)
