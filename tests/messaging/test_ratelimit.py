"""Send-rate limits: token buckets per channel (settings) and per workspace, enforced by the Deliverer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rapport.config import Settings
from rapport.kit.clock import FakeClock
from rapport.messaging.delivery import Deliverer
from rapport.messaging.ratelimit import RateLimits, TokenBucket
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, message, queue, set_workspace_settings
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        db_pool_size=8,
        spool_dir=str(tmp_path / "spool"),
        email_from="shop@hartley.example",
        channel_rates={"email": 2.0},
    )


def test_a_bucket_spends_its_burst_then_hands_out_successive_slots() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert [bucket.wait(0.0) for _ in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.5]
    assert bucket.wait(0.5) == 0.0  # one token came back after half a second
    assert bucket.wait(0.5) == 1.5  # the queue of turned-away callers is remembered
    assert bucket.wait(10.0) == 0.0 and bucket.wait(10.0) == 0.0 and bucket.wait(10.0) > 0


def test_limits_combine_the_provider_and_the_workspace_rate() -> None:
    limits = RateLimits({"sms": 100.0})
    ws = {"rate_limits": {"sms": 1, "email": "fast", "push": -3}}
    assert limits.wait("sms", 1, ws, NOON) == 0.0
    assert limits.wait("sms", 1, ws, NOON) == 1.0  # the workspace's 1/s binds before the provider's 100/s
    assert limits.wait("sms", 2, {}, NOON) == 0.0  # another workspace has its own bucket
    assert limits.wait("email", 1, ws, NOON) == 0.0  # nonsense limits are ignored
    assert limits.wait("push", 1, ws, NOON) == 0.0


def test_the_deliverer_defers_over_the_rate_without_spending_tries(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, clock: FakeClock
) -> None:
    ids = make_people(runtime, tenant, 5)
    rows = [queue(runtime, tenant, pid, f"r:{pid}", kind="service") for pid in ids]
    stats = deliverer.drain()
    assert (stats.sent, stats.deferred) == (2, 3)
    assert len(sink.wait_for(2)) == 2
    waiting = sorted(message(runtime, r.message_id).run_at for r in rows[2:])
    assert waiting == [NOON + timedelta(seconds=s) for s in (0.5, 1.0, 1.5)]
    clock.advance(timedelta(seconds=0.5))
    assert deliverer.drain().sent == 1
    clock.advance(timedelta(seconds=1))
    assert deliverer.drain().sent == 2
    assert len(sink.wait_for(5)) == 5
    assert {message(runtime, r.message_id).attempts for r in rows} == {1}
    assert {message(runtime, r.message_id).status for r in rows} == {"sent"}


def test_a_workspace_can_set_a_slower_rate(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, clock: FakeClock
) -> None:
    set_workspace_settings(runtime, tenant, rate_limits={"email": 1})
    ids = make_people(runtime, tenant, 3)
    for pid in ids:
        queue(runtime, tenant, pid, f"w:{pid}", kind="service")
    sent = []
    for _ in range(3):
        sent.append(deliverer.drain().sent)
        clock.advance(timedelta(seconds=1))
    assert sent == [1, 1, 1]
