"""A worker running both the event processor and the deliverer hands a batch's triggered messages from the
batch's transaction to the deliverer (``Deliverer.adopt``): they are claimed, checked and rendered before
that transaction commits, and go to the channel without waiting for the deliverer's own claim. On both
databases, through the real API, a real SMTP sink and real recovery."""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from rapport.app import build_worker
from rapport.collect.processor import Processor
from rapport.config import Settings
from rapport.messaging import repository as repo
from rapport.messaging.delivery import Deliverer, RoundStats
from rapport.messaging.repository import ClaimedMessage
from rapport.runtime import Runtime, build_runtime
from rapport.worker.runner import Worker
from tests.campaigns.conftest import call, campaign_messages, make_campaign, recipients
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant


def _launch(client: TestClient, tenant: Tenant) -> int:
    campaign = make_campaign(
        client,
        tenant,
        name="Order thanks",
        kind="triggered",
        channel="email",
        trigger={"type": "event", "event": "order_completed"},
        variants=[{"key": "A", "content": {"subject": "Thanks {{ first_name }}", "text": "Thank you"}}],
    )
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    return int(campaign["id"])


def _order(client: TestClient, tenant: Tenant, user: str) -> None:
    response = client.post(
        "/v1/track", json={"userId": user, "event": "order_completed"}, headers=tenant.write_headers
    )
    assert response.status_code == 200, response.text


def test_the_batch_hands_its_triggered_messages_to_the_deliverer(
    runtime: Runtime, tenant: Tenant, client: TestClient, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 2)
    cid = _launch(client, tenant)
    deliverer = Deliverer(runtime, worker_id="handoff-a")
    try:
        # without a handoff the message waits in the queue for a deliverer's claim
        _order(client, tenant, "p0")
        Processor(runtime).run_batch(tenant.workspace_id)
        [queued] = campaign_messages(runtime, cid)
        assert (queued.status, queued.claimed_by, queued.attempts) == (repo.QUEUED, None, 0)
        deliverer.drain()
        sink.wait_for(1)

        # with one, the batch's transaction claimed, checked and rendered it: it is the deliverer's already
        _order(client, tenant, "p1")
        Processor(runtime, handoff=deliverer).run_batch(tenant.workspace_id)
        _, taken = campaign_messages(runtime, cid)
        assert (taken.status, taken.claimed_by, taken.attempts) == (repo.SENDING, "handoff-a", 1)
        assert len(sink.messages) == 1
        assert deliverer.tick() == 1  # sent from what was handed over (nothing left to claim)
        [_, second] = sink.wait_for(2)
        assert second.rcpt_tos == ["person1@example.com"]
        assert second.parsed()["Subject"] == "Thanks Person1"
        assert [m.status for m in campaign_messages(runtime, cid)] == [repo.SENT, repo.SENT]
    finally:
        deliverer.close()


class _FailingChecks(Deliverer):
    """A deliverer whose claim-time checks fail (as a database error in them would)."""

    def _checked(
        self, db: Session, claimed: list[ClaimedMessage], now: datetime, stats: RoundStats
    ) -> list[Any]:
        raise RuntimeError("checks failed")


def test_a_failed_take_over_leaves_the_batch_applied_and_the_message_queued(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    sink: SmtpSink,
    email_channel: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    people = make_people(runtime, tenant, 1)
    cid = _launch(client, tenant)
    failing = _FailingChecks(runtime, worker_id="handoff-failing")
    deliverer = Deliverer(runtime, worker_id="handoff-b")
    try:
        _order(client, tenant, "p0")
        with caplog.at_level(logging.WARNING):
            stats = Processor(runtime, handoff=failing).run_batch(tenant.workspace_id)
        assert stats is not None and stats.processed == 1
        # the batch itself committed, in one transaction: it did not fall back to one event at a time
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings == ["taking over queued messages failed; the deliverer claims them"]
        assert set(recipients(runtime, cid)) == {people[0]}
        [message] = campaign_messages(runtime, cid)
        assert (message.status, message.claimed_by, message.attempts) == (repo.QUEUED, None, 0)
        deliverer.drain()
        assert len(sink.wait_for(1)) == 1
    finally:
        failing.close()
        deliverer.close()


def test_messages_taken_over_by_a_worker_that_dies_before_sending_are_queued_again(
    runtime: Runtime, tenant: Tenant, client: TestClient, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 1)
    cid = _launch(client, tenant)
    dying = Deliverer(runtime, worker_id="handoff-dying")
    _order(client, tenant, "p0")
    Processor(runtime, handoff=dying).run_batch(tenant.workspace_id)
    [message] = campaign_messages(runtime, cid)
    assert (message.status, message.claimed_by) == (repo.SENDING, "handoff-dying")
    # the process dies: the kernel drops its journal's lock, the file stays for a peer to read
    kept = dying.journal
    kept._map.close()
    os.close(kept._fd)
    assert kept.path.exists()

    peer = Deliverer(runtime, worker_id="handoff-peer")
    try:
        assert peer.recover() == 1
        [message] = campaign_messages(runtime, cid)
        assert (message.status, message.claimed_by) == (repo.QUEUED, None)
        peer.drain()
        [received] = sink.wait_for(1)
        assert received.rcpt_tos == ["person0@example.com"]
        assert [m.status for m in campaign_messages(runtime, cid)] == [repo.SENT]
        assert not kept.path.exists()
    finally:
        peer.close()


def _ticks(worker: Worker) -> tuple[Processor | None, Deliverer | None]:
    owners = [getattr(tick, "__self__", None) for tick in worker.ticks]
    processor = next((o for o in owners if isinstance(o, Processor)), None)
    deliverer = next((o for o in owners if isinstance(o, Deliverer)), None)
    return processor, deliverer


@pytest.mark.parametrize("handoff", [None, True, False])
def test_a_worker_with_both_roles_hands_off_as_configured(settings: Settings, handoff: bool | None) -> None:
    update = {} if handoff is None else {"delivery_handoff": handoff}
    runtime = build_runtime(settings.model_copy(update=update))
    try:
        processor, deliverer = _ticks(build_worker(runtime))
        assert processor is not None and deliverer is not None
        expected = True if handoff is None else handoff  # on by default, on both databases
        assert (processor.handoff is deliverer) is expected
        deliverer.close()
        # a worker without the delivery role has no deliverer to hand to
        alone, none = _ticks(build_worker(runtime, ["events", "jobs"]))
        assert alone is not None and none is None and alone.handoff is None
    finally:
        runtime.close()


def test_a_stopping_worker_sends_what_was_handed_over(
    runtime: Runtime, tenant: Tenant, client: TestClient, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 1)
    cid = _launch(client, tenant)
    worker = build_worker(runtime, ["events", "delivery"])
    processor, deliverer = _ticks(worker)
    assert processor is not None and deliverer is not None
    processor.handoff = deliverer  # as by default
    try:
        _order(client, tenant, "p0")
        processor.run_batch(tenant.workspace_id)  # handed over, not sent yet
        assert [m.status for m in campaign_messages(runtime, cid)] == [repo.SENDING]
        stop = threading.Event()
        stop.set()
        worker.run_forever(stop)  # stops at once: its lanes never ran a round
        assert [m.status for m in campaign_messages(runtime, cid)] == [repo.SENT]
        [received] = sink.wait_for(1)
        assert received.rcpt_tos == ["person0@example.com"]
    finally:
        deliverer.close()
