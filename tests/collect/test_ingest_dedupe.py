"""R1: an event is identified by (workspace, messageId); repeats are accepted and not stored twice."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from rapport.runtime import Runtime
from tests.collect.ingest_support import basic, event_count, events, track
from tests.support.tenants import Tenant


def _replay_interleaved(client: TestClient, tenants: list[Tenant], total: int, *, chunk: int = 250) -> None:
    """Send the same ``total`` messages three times to the first tenant, chunks shuffled and concurrent,
    and once to every other tenant."""
    messages = [track(f"msg-{i:06d}", user=f"user-{i % 97}", properties={"i": i}) for i in range(total)]
    chunks = [messages[i : i + chunk] for i in range(0, total, chunk)]
    sends = [(tenants[0], c) for _ in range(3) for c in chunks] + [
        (t, c) for t in tenants[1:] for c in chunks
    ]
    random.Random(7).shuffle(sends)

    def send(item: tuple[Tenant, list[dict[str, object]]]) -> int:
        tenant, batch = item
        return client.post("/v1/batch", json={"batch": batch}, headers=basic(tenant.write_key)).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(send, sends))
    assert statuses == [200] * len(sends)


def _check(runtime: Runtime, tenants: list[Tenant], total: int) -> None:
    expected = {f"msg-{i:06d}" for i in range(total)}
    for tenant in tenants:
        stored = events(runtime, tenant.workspace_id)
        assert len(stored) == total
        assert {e.message_id for e in stored} == expected


def test_replayed_batches_are_stored_once_per_workspace(
    client: TestClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    _replay_interleaved(client, [tenant, other_tenant], 1000)
    _check(runtime, [tenant, other_tenant], 1000)


@pytest.mark.slow
def test_replayed_10k_batches_are_stored_once_per_workspace(
    client: TestClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    _replay_interleaved(client, [tenant, other_tenant], 10_000, chunk=1000)
    _check(runtime, [tenant, other_tenant], 10_000)


def test_duplicates_inside_one_batch_and_across_calls(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    first = track("dup", event="First")
    second = track("dup", event="Second")
    answer = client.post("/v1/batch", json={"batch": [first, second, first]}, headers=basic(tenant.write_key))
    assert answer.status_code == 200
    assert answer.json() == {"success": True}
    assert client.post("/v1/track", json=second, headers=basic(tenant.write_key)).status_code == 200
    (event,) = events(runtime, tenant.workspace_id)
    assert event.event == "First"  # the first stored wins; repeats change nothing


def test_the_same_message_id_of_another_type_is_still_a_repeat(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    assert client.post("/v1/track", json=track("same"), headers=basic(tenant.write_key)).status_code == 200
    body = {"userId": "u1", "messageId": "same"}
    assert client.post("/v1/identify", json=body, headers=basic(tenant.write_key)).status_code == 200
    assert event_count(runtime, tenant.workspace_id) == 1
