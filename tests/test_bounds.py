"""Numbers and times a client sends are bounded at the edge and refused as 400 naming the field: every list
endpoint's ``offset`` (``api.deps.Offset``), ids in bodies and times (``kit.bounds.Id``, ``Moment``). Each
of these answered 500 when fuzzed (an integer past 64 bits the driver could not bind; a time with no UTC
equivalent before year 1 or after 9999)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from rapport.kit.pagination import MAX_OFFSET
from tests.support.tenants import Tenant


def test_every_list_endpoint_refuses_an_offset_past_its_bound(client: TestClient, tenant: Tenant) -> None:
    schema = client.get("/openapi.json").json()
    listed = [
        path
        for path, operations in schema["paths"].items()
        if any(p["name"] == "offset" for p in operations.get("get", {}).get("parameters", []))
    ]
    assert len(listed) >= 10, listed
    for template in listed:
        path = re.sub(r"\{[^}]+\}", "1", template)
        for offset in (MAX_OFFSET + 1, 2**63):
            answer = client.get(path, params={"offset": offset}, headers=tenant.secret_headers)
            if answer.status_code == 404:  # the id 1 names nothing here: the route answers before paging
                continue
            assert answer.status_code == 400, (template, offset, answer.text[:200])
            assert answer.json()["error"]["details"][0]["field"] == "offset"
        within = client.get(path, params={"offset": MAX_OFFSET}, headers=tenant.secret_headers)
        assert within.status_code in (200, 404), (template, within.text[:200])


def _refused(answer: object, field: str) -> None:
    status = answer.status_code  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert status == 400, body
    fields = [d["field"] for d in body["error"]["details"]]
    assert field in fields, fields


def test_ids_and_times_in_bodies_and_queries_are_bounded(client: TestClient, tenant: Tenant) -> None:
    h = tenant.secret_headers
    huge = 2**63
    _refused(client.post("/api/v1/quarantine/replay", json={"ids": [huge]}, headers=h), "ids.0")
    message = {"channel": "email", "subject": "s", "html": "<p>h</p>"}
    _refused(client.post("/api/v1/messages", json={**message, "profile_id": huge}, headers=h), "profile_id")
    late = "9999-12-31T23:59:59-05:00"
    _refused(
        client.post("/api/v1/messages", json={**message, "user_id": "u1", "send_at": late}, headers=h),
        "send_at",
    )
    made = client.post(
        "/api/v1/templates",
        json={"name": "T", "channel": "email", "content": {"subject": "Hi", "html": "<p>x</p>"}},
        headers=h,
    )
    assert made.status_code == 201, made.text
    preview = f"/api/v1/templates/{made.json()['id']}/preview"
    _refused(client.post(preview, json={"profile_id": huge}, headers=h), "profile_id")
    _refused(client.post(preview, json={"segment_id": huge}, headers=h), "segment_id")
    early = "0001-01-01T00:00:00+01:00"
    _refused(client.get("/api/v1/profiles/1/events", params={"since": early}, headers=h), "since")
    _refused(client.get("/api/v1/profiles/1/events", params={"until": late}, headers=h), "until")
    campaign = {"name": "C", "channel": "email", "variants": [{"key": "A", "content": {"subject": "s"}}]}
    _refused(client.post("/api/v1/campaigns", json={**campaign, "send_at": late}, headers=h), "send_at")
