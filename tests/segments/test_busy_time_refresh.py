"""A busy time-based segment still lets people leave on time: real-time entries of others must not count
as the periodic refresh that moves the window (both databases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from rapport.kit.clock import Clock, FakeClock
from rapport.runtime import Runtime
from tests.segments.realtime_support import START, members, send
from tests.segments.test_realtime import _segment
from tests.support.profiles import profile_id
from tests.support.tenants import Tenant


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves."""
    return FakeClock(START)


def test_a_member_leaves_a_busy_window_segment_on_time(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    send(client, tenant, clock, "track", {"userId": "old", "event": "order_completed"})
    old = profile_id(runtime, tenant, "old")
    buyers = _segment(client, tenant, "Recent buyers", "purchased in last 7 days")
    assert set(members(runtime, buyers)) == {old}
    # Past the window for "old", while other buyers keep entering every few seconds (real time).
    clock.advance(timedelta(days=7, hours=1))
    for n in range(3):
        send(client, tenant, clock, "track", {"userId": f"new{n}", "event": "order_completed"})
        clock.advance(timedelta(seconds=20))
    now_in = set(members(runtime, buyers))
    assert old not in now_in and len(now_in) == 3
