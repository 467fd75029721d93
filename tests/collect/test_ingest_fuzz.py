"""R3: whatever a client sends to the tracking API, the answer is never a 5xx (hypothesis-generated bodies)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collect.ingest_support import basic
from tests.support.tenants import Tenant

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["", "\x00", "2026-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
    )
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_segment_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"]) | _json,
        "userId": _json,
        "anonymousId": _json,
        "messageId": _json,
        "event": _json,
        "name": _json,
        "groupId": _json,
        "previousId": _json,
        "properties": _json,
        "traits": _json,
        "context": st.fixed_dictionaries(
            {}, optional={k: _json for k in ("ip", "location", "device", "app", "page", "channel", "consent")}
        )
        | _json,
        "timestamp": _json,
        "sentAt": _json,
        "originalTimestamp": _json,
    },
)


def _bodies() -> st.SearchStrategy[bytes]:
    as_json = (_segment_like | _json).map(lambda doc: json.dumps(doc).encode())
    as_utf8 = (_segment_like | _json).map(lambda doc: json.dumps(doc, ensure_ascii=False).encode())
    deep = b'{"userId":"u","event":"E","properties":{"a":' + b"[" * 900 + b"]" * 900 + b"}}"
    escapes = st.sampled_from(
        [
            deep,
            b'{"userId":"\\ud800","event":"E"}',
            b'{"userId":"u","event":"E\\u0000"}',
            b'{"userId":1e999,"event":"E"}',
        ]
    )
    return as_json | as_utf8 | escapes | st.binary(max_size=64)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies(), route=st.sampled_from(["track", "identify", "page", "alias", "batch"]))
def test_no_body_makes_the_tracking_api_fail(
    client: TestClient, tenant: Tenant, body: bytes, route: str
) -> None:
    if route == "batch" and body[:1] in {b"{", b"["}:
        try:
            doc: Any = json.loads(body)
            body = json.dumps({"batch": [doc, doc]}).encode()
        except ValueError:
            pass
    answer = client.post(
        f"/v1/{route}", content=body, headers={**basic(tenant.write_key), "Content-Type": "application/json"}
    )
    assert answer.status_code < 500, (answer.status_code, answer.text, body[:300])
    assert answer.status_code in {200, 400}, answer.text
    if answer.status_code == 400:
        error = answer.json()["error"]
        assert error["code"] and error["message"]
