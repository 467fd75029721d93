"""Computed traits through the HTTP ingest and the processor, across merges, past the state bounds, and the
SQL twin against the Python fold on seeded random data (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.collect.importer import import_event_rows
from rapport.kit.clock import FakeClock
from rapport.models import Identity, Profile
from rapport.process import computed, traits_service
from rapport.process.computed import as_text
from rapport.process.computed_sql import computed_expression
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    """A clock fixed at NOW."""
    return FakeClock(NOW)


def _computed_of(runtime: Runtime, tenant: Tenant, value: str) -> dict[str, Any]:
    with runtime.read_sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id, Identity.value == value
            )
        )
        profile = db.get(Profile, pid)
        assert profile is not None
        return dict(profile.computed)


def test_http_event_updates_traits_through_the_processor(client: TestClient, tenant: Tenant) -> None:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    for total in (12.5, 7.5):
        sent = client.post(
            "/v1/track",
            json={
                "userId": "web-1",
                "event": "order_completed",
                "properties": {"total": total, "category": "toys"},
            },
            headers=tenant.write_headers,
        )
        assert sent.status_code == 200, sent.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    values = _computed_of(runtime, tenant, "web-1")
    assert (values["total_orders"], values["total_spend"], values["favourite_category"]) == (2, 20, "toys")
    assert values["average_order_value"] == 10


def _order(who: dict[str, Any], n: int, total: float, days_ago: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "order_completed",
        **who,
        "messageId": f"m-{n}",
        "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
        "properties": {"total": total, "category": f"c{n % 2}"},
    }


def test_merge_survivor_is_recomputed(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    rows = [
        {
            "type": "identify",
            "anonymousId": "anon-b",
            "messageId": "i-b",
            "traits": {"email": "m@example.com"},
        },
        _order({"userId": "m1"}, 1, 10, 30),
        _order({"userId": "m1"}, 2, 20, 20),
        _order({"anonymousId": "anon-b"}, 3, 5, 10),
    ]
    import_event_rows(runtime, workspace_id=ws, rows=rows)
    assert _computed_of(runtime, tenant, "m1")["total_orders"] == 2
    link = {"type": "identify", "userId": "m1", "messageId": "i-m1", "traits": {"email": "m@example.com"}}
    import_event_rows(runtime, workspace_id=ws, rows=[link])
    merged = _computed_of(runtime, tenant, "m1")
    assert _computed_of(runtime, tenant, "m@example.com")["total_orders"] == merged["total_orders"] == 3
    assert merged["total_spend"] == 35
    assert merged["first_purchase_at"] == (NOW - timedelta(days=30)).isoformat(timespec="microseconds")
    traits_service.recompute(runtime, ws)
    assert _computed_of(runtime, tenant, "m1") == merged


def test_bounded_states_overflow_to_exact_values(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(computed, "MAX_COUNTS", 3)
    monkeypatch.setattr(computed, "MAX_DISTINCT", 3)
    wire_runtime(runtime)
    ws = tenant.workspace_id
    with runtime.sessions() as db:
        traits_service.create_definition(
            db,
            workspace_id=ws,
            name="skus",
            event="viewed",
            aggregation="distinct_count",
            property="sku",
            now=NOW,
        )
        traits_service.create_definition(
            db,
            workspace_id=ws,
            name="top_sku",
            event="viewed",
            aggregation="most_frequent",
            property="sku",
            now=NOW,
        )
        db.commit()
    skus = ["a", "b", "c", "d", "e", "e", "d", "e"]
    rows = [
        {"type": "track", "event": "viewed", "userId": "v", "messageId": f"v{i}", "properties": {"sku": s}}
        for i, s in enumerate(skus)
    ]
    import_event_rows(runtime, workspace_id=ws, rows=rows, batch_size=2)
    incremental = _computed_of(runtime, tenant, "v")
    assert (incremental["skus"], incremental["top_sku"]) == (5, "e")
    assert incremental["_state"]["skus"] == {"overflow": True}
    traits_service.recompute(runtime, ws)
    assert _computed_of(runtime, tenant, "v") == incremental


def _random_rows(rnd: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(160):
        props: dict[str, Any] = {}
        if rnd.random() < 0.9:
            props["total"] = rnd.choice([rnd.randint(1, 50), round(rnd.uniform(0, 80), 2), "12", None])
        if rnd.random() < 0.85:
            props["category"] = rnd.choice(["shoes", "bags", "hats", "Bags", "bag"])
        if rnd.random() < 0.3:
            props["gift"] = rnd.choice([True, False])
        rows.append(
            {
                "type": "track",
                "event": rnd.choice(["order_completed", "order_completed", "product_viewed"]),
                "userId": f"r{rnd.randint(1, 12)}",
                "messageId": f"rand-{i}",
                "timestamp": (
                    NOW - timedelta(days=rnd.randint(0, 120), minutes=rnd.randint(0, 600))
                ).isoformat(),
                "properties": props,
                "context": {"channel": rnd.choice(["web", "app", "store"])},
            }
        )
    return rows


CONDITIONS: list[list[dict[str, Any]]] = [
    [],
    [{"property": "total", "op": ">", "value": 20}],
    [{"property": "total", "op": "<=", "value": 20}],
    [{"property": "category", "op": "!=", "value": "bags"}],
    [{"property": "category", "op": "in", "value": ["bags", "Bags"]}],
    [{"property": "category", "op": "contains", "value": "ag"}],
    [{"property": "channel", "op": "=", "value": "store"}, {"property": "gift", "op": "=", "value": True}],
    [{"property": "category", "op": ">=", "value": "hats"}],
    [{"property": "context.channel", "op": "=", "value": "web"}],
]


def test_sql_twin_equals_the_fold_on_random_data(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    rnd = random.Random(11)
    import_event_rows(runtime, workspace_id=ws, rows=_random_rows(rnd), batch_size=40)
    made = []
    with runtime.sessions() as db:
        n = 0
        for agg in computed.AGGREGATIONS:
            for conds in CONDITIONS:
                for window in (None, 45):
                    prop = None
                    if agg in computed.NUMERIC:
                        prop = "total"
                    elif agg in computed.NEEDS_PROPERTY:
                        prop = "category"
                    n += 1
                    row = traits_service.create_definition(
                        db, workspace_id=ws, name=f"t{n}", event="order_completed", aggregation=agg,
                        property=prop, conditions=conds, window_days=window, now=NOW,
                    )  # fmt: skip
                    made.append(row.name)
        db.commit()
    traits_service.recompute(runtime, ws)
    with runtime.read_sessions() as db:
        pids = list(
            db.scalars(select(Profile.id).where(Profile.workspace_id == ws, Profile.merged_into_id.is_(None)))
        )
        values = traits_service.read_computed(db, ws, pids, made, NOW)
        for definition in traits_service.list_definitions(db, workspace_id=ws):
            if definition.name not in made:
                continue
            spec = traits_service.spec_of(definition)
            expr = computed_expression(spec, Profile.id, NOW).label("v")
            got = {r[0]: r[1] for r in db.execute(select(Profile.id, expr).where(Profile.id.in_(pids)))}
            for pid in pids:
                want, sql = values[pid][spec.name], got[pid]
                label = (spec.name, spec.aggregation, spec.conditions, spec.window_days, pid)
                if spec.aggregation in ("first_at", "last_at"):
                    assert (None if sql is None else sql.isoformat(timespec="microseconds")) == want, label
                elif spec.aggregation in ("first_value", "last_value", "most_frequent"):
                    assert sql == as_text(want), label
                elif want is None:
                    assert sql is None, label
                else:
                    assert float(sql) == pytest.approx(float(want)), label
