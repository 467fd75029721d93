"""A render that stalls on a busy worker (hard wall-clock cap reached with CPU budget left) is tried again,
not dead-lettered; a template that spends its CPU budget still fails (R22)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from rapport.kit.clock import Clock, FakeClock
from rapport.messaging.delivery import Deliverer, channels_of
from rapport.models import Message
from rapport.personalize import RenderFailed, TemplateEngine
from rapport.personalize.limits import RenderBudget, RenderLimits, RenderStalledError, RenderTimeLimitError
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.test_pipeline import SlowChannel, _queue, _statuses
from tests.support.tenants import Tenant


def test_waiting_is_a_stall_and_spending_is_a_time_limit() -> None:
    waited = RenderBudget(0.02, hard_factor=2.0)
    time.sleep(0.05)  # past the hard cap without using the CPU: the machine, not the template
    with pytest.raises(RenderStalledError):
        waited.check()
    spent = RenderBudget(0.02, hard_factor=1000.0)
    with pytest.raises(RenderTimeLimitError) as caught:
        while True:  # burns CPU until the budget says stop
            spent.check()
    assert not isinstance(caught.value, RenderStalledError)


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves."""
    return FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def _stalled_budget() -> RenderBudget:
    budget = RenderBudget(10.0)
    budget.wall_deadline = budget.hard_deadline = 0.0  # as if the thread had waited past the hard cap
    return budget


def test_the_engine_names_a_stall_apart_from_a_costly_template(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=50))
    monkeypatch.setattr(engine, "new_budget", _stalled_budget)
    with pytest.raises(RenderFailed) as caught:
        engine.render("{% for a in (1..3) %}{{ a }}{% endfor %}", {})
    assert caught.value.reason == "stalled"


def test_a_stalled_render_is_tried_again_and_delivered(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    ids = make_people(runtime, tenant, 3)
    _queue(runtime, tenant, ids)
    channel = SlowChannel(0.0)
    channels_of(runtime)["email"] = channel
    deliverer = Deliverer(runtime, worker_id="stall", batch_size=10)
    stalls = {"left": 1}
    normal = deliverer.engine.new_budget

    def busy_then_normal() -> RenderBudget:
        if stalls["left"]:
            stalls["left"] -= 1
            return _stalled_budget()
        return normal()

    monkeypatch.setattr(deliverer.engine, "new_budget", busy_then_normal)
    try:
        first = deliverer.drain()
        assert (first.sent, first.dead, first.retried) == (2, 0, 1)
        with runtime.read_sessions() as db:
            [waiting] = db.scalars(select(Message).where(Message.status == "queued")).all()
        assert waiting.status_reason is not None and waiting.status_reason.startswith("render stalled")
        assert waiting.attempts == 1  # the stall counts as a try: a machine that never recovers ends it
        clock.advance(timedelta(seconds=31))
        assert deliverer.drain().sent == 1
    finally:
        deliverer.close()
    assert _statuses(runtime) == {"sent": 3}
    sent = [m for _start, _end, batch in channel.spans for m in batch]
    assert len(sent) == len(set(sent)) == 3  # each message went out once
