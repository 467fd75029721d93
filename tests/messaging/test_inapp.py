"""The in-app inbox: outbox rows the app polls with the user's identity, counted delivered/opened."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rapport.app import wire_runtime
from rapport.kit.clock import FakeClock
from rapport.messaging import inapp
from rapport.messaging.delivery import Deliverer
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, events, message, queue, set_workspace_settings
from tests.support.tenants import Tenant

CONTENT = {
    "title": "Hi {{ profile.first_name }}",
    "body": "Your order {{ data.order }} shipped",
    "data": {"order": "A-17"},
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def inbox_deliverer(runtime: Runtime) -> Iterator[Deliverer]:
    wire_runtime(runtime)
    d = Deliverer(runtime, worker_id="inbox-deliverer", batch_size=25)
    yield d
    d.close()


def inbox(client: TestClient, tenant: Tenant, query: str) -> dict[str, Any]:
    answer = client.get(f"/v1/inbox?{query}", headers=tenant.write_headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_app_lists_reads_and_dismisses_messages(
    runtime: Runtime, tenant: Tenant, client: TestClient, inbox_deliverer: Deliverer, clock: FakeClock
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent=None)
    first = queue(runtime, tenant, pid, "in:1", channel="inapp", kind="service", content=CONTENT)
    clock.advance(timedelta(minutes=1))
    second = queue(
        runtime,
        tenant,
        pid,
        "in:2",
        channel="inapp",
        content={"title": "New in", "url": "https://s.example/n"},
    )
    assert inbox(client, tenant, "userId=p0") == {"unread": 0, "messages": []}  # not delivered yet
    assert inbox_deliverer.drain().sent == 2
    assert message(runtime, first.message_id).provider_id == "inbox"

    listed = inbox(client, tenant, "userId=p0")
    assert listed["unread"] == 2
    assert [m["id"] for m in listed["messages"]] == [second.message_id, first.message_id]
    assert listed["messages"][1]["title"] == "Hi Person0"
    assert listed["messages"][1]["body"] == "Your order A-17 shipped"
    assert listed["messages"][0]["url"] == "https://s.example/n"
    inbox(client, tenant, "userId=p0")  # polling again does not count delivery twice
    assert len(events(runtime, pid, "inapp_delivered")) == 2
    assert message(runtime, first.message_id).delivered_at == NOON + timedelta(minutes=1)

    read = client.post(f"/v1/inbox/{first.message_id}/read?userId=p0", headers=tenant.write_headers)
    assert read.status_code == 200 and read.json()["success"] is True
    client.post(f"/v1/inbox/{first.message_id}/read?userId=p0", headers=tenant.write_headers)
    assert len(events(runtime, pid, "inapp_opened")) == 1
    row = message(runtime, first.message_id)
    assert row.read_at is not None and row.opened_at is not None
    unread = inbox(client, tenant, "userId=p0&status=unread")
    assert unread["unread"] == 1 and [m["id"] for m in unread["messages"]] == [second.message_id]

    dismissed = client.post(f"/v1/inbox/{second.message_id}/dismiss?userId=p0", headers=tenant.write_headers)
    assert dismissed.status_code == 200
    assert [m["id"] for m in inbox(client, tenant, "userId=p0")["messages"]] == [first.message_id]
    assert len(events(runtime, pid, "inapp_dismissed")) == 1
    assert message(runtime, second.message_id).dismissed_at is not None


def test_one_person_cannot_read_or_mark_anothers_inbox(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant, client: TestClient, inbox_deliverer: Deliverer
) -> None:
    p0, _p1 = make_people(runtime, tenant, 2, consent=None)
    mine = queue(runtime, tenant, p0, "in:3", channel="inapp", kind="service", content=CONTENT)
    inbox_deliverer.drain()
    assert inbox(client, tenant, "userId=p1")["messages"] == []
    other_person = client.post(f"/v1/inbox/{mine.message_id}/read?userId=p1", headers=tenant.write_headers)
    assert other_person.status_code == 404
    other_workspace = client.get("/v1/inbox?userId=p0", headers=other_tenant.write_headers)
    assert other_workspace.status_code == 404
    assert (
        client.post(
            f"/v1/inbox/{mine.message_id}/dismiss?userId=p0", headers=other_tenant.write_headers
        ).status_code
        == 404
    )
    assert client.get("/v1/inbox?userId=p0").status_code == 401
    assert client.get("/v1/inbox", headers=tenant.write_headers).status_code == 400
    assert message(runtime, mine.message_id).read_at is None


def test_an_identity_secret_makes_the_user_prove_who_they_are(
    runtime: Runtime, tenant: Tenant, client: TestClient, inbox_deliverer: Deliverer
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent=None)
    queue(runtime, tenant, pid, "in:4", channel="inapp", kind="service", content=CONTENT)
    inbox_deliverer.drain()
    set_workspace_settings(runtime, tenant, inapp={"identity_secret": "customer-server-secret"})
    assert client.get("/v1/inbox?userId=p0", headers=tenant.write_headers).status_code == 403
    wrong = inapp.user_hash("customer-server-secret", "p1")
    assert (
        client.get(f"/v1/inbox?userId=p0&userHash={wrong}", headers=tenant.write_headers).status_code == 403
    )
    good = inapp.user_hash("customer-server-secret", "p0")
    assert len(inbox(client, tenant, f"userId=p0&userHash={good}")["messages"]) == 1


def test_the_send_api_queues_an_in_app_message(
    runtime: Runtime, tenant: Tenant, client: TestClient, inbox_deliverer: Deliverer
) -> None:
    make_people(runtime, tenant, 1, consent=None)
    sent = client.post(
        "/api/v1/messages",
        headers=tenant.secret_headers,
        json={
            "user_id": "p0",
            "channel": "inapp",
            "title": "Welcome {{ profile.first_name }}",
            "body": "Your card is ready",
            "image": "https://s.example/card.png",
        },
    )
    assert sent.status_code == 202, sent.text
    inbox_deliverer.drain()
    [shown] = inbox(client, tenant, "userId=p0")["messages"]
    assert (shown["title"], shown["body"]) == ("Welcome Person0", "Your card is ready")
