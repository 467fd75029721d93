"""What the real-time segment tests share: sending one call through the tracking API at the test clock's
time and draining the app's worker (so that its processing and the segment hook have run), creating a
segment through the API, and reading a segment's members (a profile's id: tests/support/profiles.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.kit.clock import FakeClock
from rapport.models import SegmentMember
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def send(client: TestClient, tenant: Tenant, clock: FakeClock, kind: str, body: dict[str, Any]) -> None:
    """POST ``/v1/<kind>`` with ``body`` stamped now, then run the worker until it is idle."""
    body = {**body, "timestamp": clock.now().isoformat()}
    answer = client.post(f"/v1/{kind}", json=body, headers=tenant.write_headers)
    assert answer.status_code == 200, answer.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]


def make_segment(client: TestClient, tenant: Tenant, name: str, text: str) -> int:
    """Create a segment through the API and let the worker build it; return its id."""
    answer = client.post("/api/v1/segments", json={"name": name, "text": text}, headers=tenant.secret_headers)
    assert answer.status_code == 201, answer.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    return int(answer.json()["id"])


def members(runtime: Runtime, segment_id: int) -> dict[int, datetime]:
    """The segment's members and when each entered."""
    with runtime.read_sessions() as db:
        rows = db.execute(
            select(SegmentMember.profile_id, SegmentMember.entered_at).where(
                SegmentMember.segment_id == segment_id
            )
        )
        return {pid: at for pid, at in rows}
