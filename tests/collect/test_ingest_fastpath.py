"""The fast ingest path answers exactly as the standard-library path and the FastAPI routes did: orjson only
where it agrees with ``json`` (decision 0003), the ASGI shortcut for /v1 with the shared error shape and
request ids, multi-row/COPY inserts that keep arrival order and dedupe (R1), and the held connection."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from rapport.collect import codec, ingest
from rapport.collect.committer import Committer
from rapport.collect.normalize import MAX_EVENT_BYTES, InvalidJson, parse_json, parse_json_fast
from rapport.kit import fastjson
from rapport.models import Event
from rapport.runtime import Runtime
from tests.collect.ingest_support import basic, event_count, events, quarantined, track
from tests.support.tenants import Tenant

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


def _stdlib_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_fast_parse_agrees_with_json_or_declines(value: Any) -> None:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    done, parsed = fastjson.fast_loads(body)
    assert not done or parsed == json.loads(body)
    assert parse_json(body) == json.loads(body)
    assert codec.compact_size(json.loads(body)) == _stdlib_size(json.loads(body))
    assert json.loads(codec.dumps_text(value)) == value


def test_the_fast_path_declines_what_orjson_reads_differently() -> None:
    assert parse_json_fast(b'{"n": 123456789012345678901234567890}') == (
        {"n": 123456789012345678901234567890},
        False,
    )
    assert parse_json_fast(b'\xef\xbb\xbf{"a": 1}') == ({"a": 1}, False)
    assert parse_json_fast(b'{"s": "\\ud800"}') == ({"s": "\ud800"}, False)
    assert parse_json_fast(b'{"a": 1.5e-07}') == ({"a": 1.5e-07}, True)
    assert codec.compact_size({"a": 1.5e-07, "b": 1e-05}) == _stdlib_size({"a": 1.5e-07, "b": 1e-05})
    with pytest.raises(InvalidJson, match="out of range"):
        parse_json(b'{"a": 1e400}')


def test_big_integers_and_lone_surrogates_keep_their_behaviour(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    headers = {**basic(tenant.write_key), "Content-Type": "application/json"}
    big = b'{"userId":"u","event":"E","messageId":"big","properties":{"n":123456789012345678901234567890}}'
    assert client.post("/v1/track", content=big, headers=headers).status_code == 200
    assert events(runtime, tenant.workspace_id)[0].properties == {"n": 123456789012345678901234567890}
    lone = (
        b'{"batch":[{"type":"track","userId":"u","event":"E","messageId":"s","properties":{"x":"\\ud800"}}]}'
    )
    answer = client.post("/v1/batch", content=lone, headers=headers)
    assert answer.status_code == 200 and answer.json()["accepted"] == 0
    assert "Unicode" in quarantined(runtime, tenant.workspace_id)[0].reason
    overflow = b'{"userId":"u","event":"E","properties":{"x":1e400}}'
    answer = client.post("/v1/track", content=overflow, headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


def test_batch_items_are_measured_exactly_at_the_limit_with_small_floats(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    def item(message_id: str, size: int) -> dict[str, Any]:
        message = track(message_id, properties={"f": [1e-05] * 40, "g": 1.5e-07, "pad": ""})
        message["properties"]["pad"] = "x" * (size - _stdlib_size(message))
        assert _stdlib_size(message) == size
        return message

    batch = [item("at", MAX_EVENT_BYTES), item("over", MAX_EVENT_BYTES + 1)]
    answer = client.post("/v1/batch", json={"batch": batch}, headers=basic(tenant.write_key))
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    assert [q["messageId"] for q in answer.json()["quarantined"]] == ["over"]
    assert [e.message_id for e in events(runtime, tenant.workspace_id)] == ["at"]


def _row(workspace_id: int, message_id: str, n: int) -> dict[str, Any]:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return {
        "workspace_id": workspace_id, "message_id": message_id, "type": "track", "event": f"E{n}",
        "user_id": "u", "anonymous_id": None, "profile_id": None, "channel": "web", "timestamp": at,
        "received_at": at, "sent_at": None, "properties": {"n": n}, "traits": {}, "context": {},
        "extra": {}, "source": "api", "state": 0,
    }  # fmt: skip


def test_bulk_insert_keeps_arrival_order_and_the_first_of_repeats(runtime: Runtime, tenant: Tenant) -> None:
    # 601 rows cross several statements (256-row chunks on SQLite; one JSON array per call on PostgreSQL);
    # repeats of m0 and m300 sit in later chunks and must be skipped, not overwrite.
    ids = [f"m{i}" for i in range(600)] + ["m0"]
    ids[450] = "m300"
    rows = [_row(tenant.workspace_id, mid, n) for n, mid in enumerate(ids)]
    with runtime.sessions() as db:
        ingest.append_events(db, rows[:300])
        ingest.append_events(db, rows[300:])  # a second call in the same transaction (as replay does)
        db.commit()
    stored = events(runtime, tenant.workspace_id)
    assert len(stored) == 599
    assert [e.properties["n"] for e in stored] == [n for n in range(600) if n != 450]
    assert {e.message_id: e.event for e in stored}["m0"] == "E0"


def test_bulk_insert_stores_values_exactly(runtime: Runtime, tenant: Tenant) -> None:
    """What the driver paths write reads back unchanged: integers past 64 bits, small floats, text outside
    ASCII, nested values, JSON columns the import's reader sent as text, and a naive time (UTC)."""
    exact = {"big": 2**70, "small": 1e-05, "text": 'café ✓ "quoted" \\', "nested": [1, {"a": None}, []]}
    first = {**_row(tenant.workspace_id, "x1", 1), "properties": exact, "context": {"ip": "1.2.3.4"}}
    pre_encoded = {
        **_row(tenant.workspace_id, "x2", 2),
        "properties": codec.dumps_text(exact),
        "traits": '{"plan":"gold"}',
        "timestamp": datetime(2026, 3, 1, 12, 30),  # naive: UTC
        "sent_at": datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
    }
    with runtime.sessions() as db:
        ingest.append_events(db, [first, pre_encoded])
        db.commit()
    one, two = events(runtime, tenant.workspace_id)
    assert one.properties == exact and one.context == {"ip": "1.2.3.4"}
    assert two.properties == exact and two.traits == {"plan": "gold"}
    assert two.timestamp == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert two.sent_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_the_fast_path_keeps_request_ids_cors_and_the_error_shape(client: TestClient, tenant: Tenant) -> None:
    ok = client.post(
        "/v1/track", json=track("r1"), headers={**basic(tenant.write_key), "X-Request-ID": "req-1"}
    )
    assert ok.status_code == 200 and ok.json() == {"success": True}
    assert ok.headers["x-request-id"] == "req-1"
    assert ok.headers["access-control-allow-origin"] == "*"
    refused = client.post("/v1/batch", json={"batch": [track("r2")]}, headers=basic("wk_nope"))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    assert refused.headers["x-request-id"]
    assert client.options("/v1/track").status_code == 204
    wrong_method = client.get("/v1/track")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert client.post("/v1/track/", json=track("r3"), headers=basic(tenant.write_key)).status_code < 500


def test_writer_holds_one_connection_and_releases_it(runtime: Runtime, tenant: Tenant) -> None:
    pool = runtime.engine.pool
    writer = ingest.IngestWriter(runtime.engine)
    before = pool.checkedout()  # type: ignore[attr-defined]
    for n in range(3):
        work = ingest.IngestWork(events=[_row(tenant.workspace_id, f"w{n}", n)])
        assert writer.write([work]) == [[]]
        assert pool.checkedout() == before + 1  # type: ignore[attr-defined]
    writer.release()
    assert pool.checkedout() == before  # type: ignore[attr-defined]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):  # the connection goes back
        writer.write([ingest.IngestWork(events=[{**_row(tenant.workspace_id, "bad", 0), "type": None}])])
    assert pool.checkedout() == before  # type: ignore[attr-defined]
    assert event_count(runtime, tenant.workspace_id) == 3
    with runtime.read_sessions() as db:
        assert db.scalars(select(Event.message_id).order_by(Event.id)).all() == ["w0", "w1", "w2"]


def test_committer_runs_on_idle_after_a_quiet_moment_and_at_stop() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        committer: Committer[int, int] = Committer(
            write=lambda works: works, on_idle=lambda: calls.append("idle"), idle_after=0.05
        )
        assert await committer.submit(1) == 1
        await asyncio.sleep(0.2)
        assert calls == ["idle"]
        await asyncio.sleep(0.1)
        assert calls == ["idle"]  # nothing written since: not again
        assert await committer.submit(2) == 2
        await committer.stop()
        assert calls == ["idle", "idle"]

    asyncio.run(scenario())
