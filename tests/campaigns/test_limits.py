"""The campaigns API's limits on both databases: a send time in the past is refused on create, on change and
at launch (nothing frozen or queued), a copy of a sent broadcast drops its past send time, and every number
too big for its field (or for the database) answers 400 naming the field, never 500."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.kit.clock import FakeClock
from rapport.runtime import Runtime
from tests.campaigns.conftest import (
    call,
    campaign_messages,
    make_campaign,
    make_segment,
    recipients,
    run_worker,
)
from tests.messaging.conftest import make_people
from tests.support.tenants import Tenant

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # Europe/London is on UTC in January
EMAIL = {"key": "A", "content": {"subject": "Hello", "text": "Hi"}}
BIG = 10**20


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def _error(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_a_past_send_time_is_refused_on_create_on_change_and_at_launch(
    client: TestClient, app: FastAPI, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    make_people(runtime, tenant, 2, extra={"city": "Leeds"})
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    base = {"channel": "email", "segment_ids": [segment], "variants": [EMAIL]}
    headers = tenant.secret_headers

    error = _error(
        client.post(
            "/api/v1/campaigns",
            json={**base, "name": "Old", "send_at": "2021-01-01T09:00:00Z"},
            headers=headers,
        )
    )
    assert error["code"] == "validation_failed"
    assert error["message"] == (
        "the send time 2021-01-01 09:00 (Europe/London) is in the past; choose a later time or send now"
    )
    assert error["details"] == {
        "field": "send_at",
        "send_at": "2021-01-01T09:00:00+00:00",
        "now": "2026-01-15T12:00:00+00:00",
    }
    assert call(client, tenant, "GET", "/api/v1/campaigns") == []

    # within a minute's grace it means now: launching sends at once
    nearly = make_campaign(
        client, tenant, **base, name="Nearly", send_at=(NOW - timedelta(seconds=59)).isoformat()
    )
    assert call(client, tenant, "POST", f"/api/v1/campaigns/{nearly['id']}/launch")["status"] == "sending"

    later = make_campaign(
        client, tenant, **base, name="Later", send_at=(NOW + timedelta(hours=1)).isoformat()
    )
    cid = later["id"]
    error = _error(
        client.patch(f"/api/v1/campaigns/{cid}", json={"send_at": "2026-01-15T11:58:59Z"}, headers=headers)
    )
    assert (
        error["details"]["field"] == "send_at" and "11:58 (Europe/London) is in the past" in error["message"]
    )
    # a change that leaves the time alone is no business of this check
    assert (
        call(client, tenant, "PATCH", f"/api/v1/campaigns/{cid}", json={"description": "x"})["description"]
        == "x"
    )

    clock.advance(timedelta(hours=2))  # the time went by while the draft waited
    error = _error(client.post(f"/api/v1/campaigns/{cid}/launch", headers=headers))
    assert error["message"] == (
        "the send time 2026-01-15 13:00 (Europe/London) is in the past; choose a later time or send now"
    )
    run_worker(app)
    campaign = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")
    assert (campaign["status"], campaign["started_at"], campaign["audience_size"]) == ("draft", None, None)
    assert recipients(runtime, cid) == {} and campaign_messages(runtime, cid) == []

    # sending now is asked for explicitly: no send time
    call(client, tenant, "PATCH", f"/api/v1/campaigns/{cid}", json={"send_at": None})
    assert call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")["status"] == "sending"
    run_worker(app)
    assert len(campaign_messages(runtime, cid)) == 2


def test_a_copy_of_a_sent_broadcast_drops_its_past_send_time(
    client: TestClient, app: FastAPI, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    make_people(runtime, tenant, 1, extra={"city": "Leeds"})
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    first = make_campaign(
        client,
        tenant,
        name="First",
        channel="email",
        segment_ids=[segment],
        variants=[EMAIL],
        send_at=(NOW + timedelta(hours=1)).isoformat(),
    )
    scheduled = make_campaign(
        client,
        tenant,
        name="Scheduled",
        channel="email",
        segment_ids=[segment],
        variants=[EMAIL],
        send_at=(NOW + timedelta(days=2)).isoformat(),
    )
    call(client, tenant, "POST", f"/api/v1/campaigns/{first['id']}/launch")
    clock.advance(timedelta(hours=1))
    run_worker(app)
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{first['id']}")["status"] == "sent"

    copy = call(client, tenant, "POST", f"/api/v1/campaigns/{first['id']}/duplicate", json={})
    assert copy["send_at"] is None
    assert call(client, tenant, "POST", f"/api/v1/campaigns/{copy['id']}/launch")["status"] == "sending"
    # a send time still ahead is kept
    other = call(client, tenant, "POST", f"/api/v1/campaigns/{scheduled['id']}/duplicate", json={})
    assert other["send_at"] == scheduled["send_at"]


# (field path, value) — each too big (or not finite) for its field; the raw JSON keeps 1e400 as written
HUGE: list[tuple[str, str]] = [
    ("throttle_per_hour", str(BIG)),
    ("goal_days", "1e400"),
    ("delay_seconds", str(BIG)),
    ("reentry_days", str(BIG)),
    ("priority", str(BIG)),
    ("control_percent", "1e400"),
    ("cost_per_message", "1e400"),
    ("cost_per_message", str(BIG)),
    ("segment_ids.0", str(BIG)),
    ("exclude_segment_ids.0", str(BIG)),
    ("variants.0.template_id", str(BIG)),
    ("variants.0.weight", str(BIG)),
    ("experiment.test_hours", "1e400"),
    ("trigger.segment_id", str(BIG)),
    ("trigger.offset_days", str(BIG)),
    ("trigger.max_age_hours", "1e400"),
]


def _with(body: dict[str, Any], path: str, marker: str) -> dict[str, Any]:
    """``body`` with ``marker`` at the dotted ``path`` (lists by index)."""
    body = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if last.isdigit():
        node[int(last)] = marker
    else:
        node[last] = marker
    return body


@pytest.mark.parametrize(("path", "value"), HUGE, ids=[f"{p}={v[:6]}" for p, v in HUGE])
def test_a_number_too_big_for_its_field_answers_400_with_the_field(
    client: TestClient, runtime: Runtime, tenant: Tenant, path: str, value: str
) -> None:
    segment = make_segment(client, tenant, "Everyone", 'city = "Leeds"')
    staff = make_segment(client, tenant, "Staff", 'city = "York"')
    body: dict[str, Any] = {
        "name": "Big",
        "channel": "email",
        "segment_ids": [segment],
        "exclude_segment_ids": [staff],
        "variants": [EMAIL],
        "experiment": {"test_percent": 10},
    }
    if path.startswith("trigger."):
        body = {
            **body,
            "kind": "triggered",
            "segment_ids": [],
            "trigger": {"type": "segment_entry", "segment_id": segment},
        }
    raw = json.dumps(_with(body, path, "@@")).replace('"@@"', value)
    headers = {**tenant.secret_headers, "Content-Type": "application/json"}

    created = _error(client.post("/api/v1/campaigns", content=raw, headers=headers))
    assert created["code"] == "validation_failed"
    assert [d["field"] for d in created["details"]] == [path]
    assert call(client, tenant, "GET", "/api/v1/campaigns") == []

    draft = make_campaign(client, tenant, **{**body, "name": "Draft"})
    root = path.split(".")[0]  # a change names the whole list or object the number sits in
    patch = json.dumps(_with({root: body[root]} if root in body else {}, path, "@@")).replace('"@@"', value)
    changed = _error(client.patch(f"/api/v1/campaigns/{draft['id']}", content=patch, headers=headers))
    assert [d["field"] for d in changed["details"]] == [path]
    assert (
        call(client, tenant, "GET", f"/api/v1/campaigns/{draft['id']}")["updated_at"] == draft["updated_at"]
    )


def test_ids_too_big_for_the_database_are_not_found_or_refused(client: TestClient, tenant: Tenant) -> None:
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    draft = make_campaign(client, tenant, name="D", channel="email", segment_ids=[segment], variants=[EMAIL])
    for method, path in [
        ("GET", f"/api/v1/campaigns/{BIG}"),
        ("PATCH", f"/api/v1/campaigns/{BIG}"),
        ("POST", f"/api/v1/campaigns/{BIG}/launch"),
        ("GET", f"/api/v1/campaigns/{BIG}/stats"),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        assert (
            _error(client.request(method, path, headers=tenant.secret_headers, **kwargs), 404)["code"]
            == "not_found"
        )
    error = _error(
        client.post(
            f"/api/v1/campaigns/{draft['id']}/test", json={"profile_id": BIG}, headers=tenant.secret_headers
        )
    )
    assert [d["field"] for d in error["details"]] == ["profile_id"]


def test_an_audience_that_excludes_itself_or_a_seed_that_is_no_address_is_refused(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    make_people(runtime, tenant, 2, extra={"city": "Leeds"})
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    headers = tenant.secret_headers
    base = {"name": "Spring", "channel": "email", "segment_ids": [segment], "variants": [EMAIL]}

    error = _error(
        client.post("/api/v1/campaigns", json={**base, "exclude_segment_ids": [segment]}, headers=headers)
    )
    assert error["details"] == {"field": "exclude_segment_ids"}
    assert "both included and excluded: nobody in it would receive the campaign" in error["message"]

    error = _error(
        client.post(
            "/api/v1/campaigns", json={**base, "seed_addresses": ["qa@shop.test", "qa@"]}, headers=headers
        )
    )
    assert error["details"] == {"field": "seed_addresses"}
    assert error["message"] == "seed address 'qa@': not an email address"
    sms = {**base, "name": "Text", "channel": "sms", "variants": [{"key": "A", "content": {"body": "Hi"}}]}
    error = _error(client.post("/api/v1/campaigns", json={**sms, "seed_addresses": ["12"]}, headers=headers))
    assert error["details"] == {"field": "seed_addresses"}

    made = client.post(
        "/api/v1/campaigns", json={**base, "seed_addresses": ["qa@shop.test"]}, headers=headers
    )
    assert made.status_code == 201, made.text
    changed = client.patch(
        f"/api/v1/campaigns/{made.json()['id']}", json={"exclude_segment_ids": [segment]}, headers=headers
    )
    assert _error(changed)["details"] == {"field": "exclude_segment_ids"}
    texted = client.post(
        "/api/v1/campaigns", json={**sms, "seed_addresses": ["07911 123456"]}, headers=headers
    )
    assert texted.status_code == 201, texted.text  # a UK mobile, read with the workspace's default region
