"""Computed traits on SQLite and PostgreSQL: each aggregation exactly, incremental = recompute, SQL = Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.collect.importer import import_event_rows
from rapport.kit.clock import FakeClock
from rapport.models import Profile
from rapport.process import traits_service
from rapport.process.computed_sql import computed_expression
from rapport.runtime import Runtime
from tests.support.profiles import profile_id
from tests.support.tenants import Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    """A clock fixed at NOW."""
    return FakeClock(NOW)


def order(
    user: str, days_ago: float, total: Any, *, store: str | None = None, category: str = "shoes", n: int = 0
) -> dict[str, Any]:
    """An order_completed event ``days_ago`` before NOW."""
    props: dict[str, Any] = {"total": total, "category": category}
    channel = "web"
    if store:
        props["store_id"] = store
        channel = "store"
    return {
        "type": "track",
        "event": "order_completed",
        "userId": user,
        "messageId": f"{user}-o-{days_ago}-{n}",
        "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
        "properties": props,
        "context": {"channel": channel},
    }


def other(user: str, days_ago: float, event: str, channel: str, n: int = 0) -> dict[str, Any]:
    """Another track event."""
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": f"{user}-{event}-{days_ago}-{n}",
        "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
        "properties": {},
        "context": {"channel": channel},
    }


def _profile(db: Any, pid: int) -> Profile:
    profile = db.get(Profile, pid)
    assert profile is not None
    return profile


ALICE = [
    order("alice", 100, 10, store="S1", category="shoes"),
    order("alice", 50, 30.5, store="S2", category="bags"),
    order("alice", 20, 20, store="S2", category="bags"),
    order("alice", 5, "n/a", category="shoes"),  # a string total is not a number
    other("alice", 3, "email_delivered", "email"),
    other("alice", 4, "email_opened", "email"),
    other("alice", 2, "page_view", "web"),
]


def test_builtins_exact_after_incremental_import(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    # one row per batch: every event goes through the incremental hook on its own
    report = import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=ALICE, batch_size=2)
    assert report.imported == len(ALICE)
    pid = profile_id(runtime, tenant, "alice")
    with runtime.read_sessions() as db:
        values = traits_service.read_computed(db, tenant.workspace_id, [pid], None, NOW)[pid]
    assert values["total_orders"] == 4
    assert values["total_spend"] == 60.5
    assert values["average_order_value"] == pytest.approx(60.5 / 3)
    assert values["first_purchase_at"] == (NOW - timedelta(days=100)).isoformat(timespec="microseconds")
    assert values["last_purchase_at"] == (NOW - timedelta(days=5)).isoformat(timespec="microseconds")
    assert values["favourite_store"] == "S2"
    assert values["favourite_category"] == "bags"  # 2 bags, 2 shoes: the tie goes to the smaller value
    assert values["last_seen_email"] == (NOW - timedelta(days=4)).isoformat(timespec="microseconds")
    assert values["last_seen_store"] == (NOW - timedelta(days=20)).isoformat(timespec="microseconds")
    assert values["last_seen_web"] == (NOW - timedelta(days=2)).isoformat(timespec="microseconds")
    assert values["last_seen_sms"] is None
    assert values["tenure_days"] == 100


def _custom(runtime: Runtime, tenant: Tenant) -> None:
    specs: list[tuple[str, str, str, str | None, list[dict[str, Any]], int | None]] = [
        ("orders_total_max", "order_completed", "max", "total", [], None),
        ("orders_total_min", "order_completed", "min", "total", [], None),
        ("first_category", "order_completed", "first_value", "category", [], None),
        ("last_category", "order_completed", "last_value", "category", [], None),
        ("distinct_categories", "order_completed", "distinct_count", "category", [], None),
        (
            "store_orders",
            "order_completed",
            "count",
            None,
            [{"property": "channel", "op": "=", "value": "store"}],
            None,
        ),
        (
            "big_orders",
            "order_completed",
            "count",
            None,
            [{"property": "total", "op": ">=", "value": 20}],
            None,
        ),
        (
            "s_stores",
            "order_completed",
            "count",
            None,
            [{"property": "store_id", "op": "in", "value": ["S2", "S9"]}],
            None,
        ),
        (
            "ag_orders",
            "order_completed",
            "count",
            None,
            [{"property": "category", "op": "contains", "value": "ag"}],
            None,
        ),
        ("spend_60d", "$purchase", "sum", "$value", [], 60),
        ("orders_30d", "$purchase", "count", None, [], 30),
        ("days_since_order", "$purchase", "days_since_last", None, [], None),
    ]
    with runtime.sessions() as db:
        for name, event, agg, prop, conds, window in specs:
            traits_service.create_definition(
                db,
                workspace_id=tenant.workspace_id,
                name=name,
                event=event,
                aggregation=agg,
                property=prop,
                conditions=conds,
                window_days=window,
                now=NOW,
            )
        db.commit()


EXPECTED = {
    "orders_total_max": 30.5,
    "orders_total_min": 10,
    "first_category": "shoes",
    "last_category": "shoes",
    "distinct_categories": 2,
    "store_orders": 3,
    "big_orders": 2,
    "s_stores": 2,
    "ag_orders": 2,
    "spend_60d": 50.5,
    "orders_30d": 2,
    "days_since_order": 5,
}


def test_each_aggregation_exact_and_sql_agrees(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    _custom(runtime, tenant)
    import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=ALICE, batch_size=3)
    import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=[other("bob", 1, "page_view", "web")])
    alice, bob = profile_id(runtime, tenant, "alice"), profile_id(runtime, tenant, "bob")
    with runtime.read_sessions() as db:
        got = traits_service.read_computed(db, tenant.workspace_id, [alice, bob], list(EXPECTED), NOW)
        assert {k: got[alice][k] for k in EXPECTED} == EXPECTED
        assert got[bob]["store_orders"] == 0 and got[bob]["orders_total_max"] is None
        assert got[bob]["distinct_categories"] == 0 and got[bob]["days_since_order"] is None
        # the SQL twin gives the same values (value aggregations as text)
        rows = traits_service.list_definitions(db, workspace_id=tenant.workspace_id)
        for row in rows:
            if row.name not in EXPECTED:
                continue
            spec = traits_service.spec_of(row)
            expr = computed_expression(spec, Profile.id, NOW)
            value = db.scalar(select(expr).where(Profile.id == alice))
            want = EXPECTED[row.name]
            if isinstance(want, float | int) and not isinstance(want, bool):
                assert value is not None and float(value) == pytest.approx(float(want)), row.name
            else:
                assert value == want, row.name


def test_full_recompute_equals_incremental(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    _custom(runtime, tenant)
    rows = ALICE + [
        order("carol", d, 5 + d, store=f"S{int(d) % 3}", category=f"c{int(d) % 4}", n=int(d))
        for d in range(1, 40, 3)
    ]
    import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=rows, batch_size=4)
    ids = [profile_id(runtime, tenant, u) for u in ("alice", "carol")]
    with runtime.read_sessions() as db:
        before = {p: {k: v for k, v in c.items()} for p, c in ((p, _profile(db, p).computed) for p in ids)}
    assert before[ids[0]]["total_orders"] == 4
    done = traits_service.recompute(runtime, tenant.workspace_id)
    assert done == 2
    with runtime.read_sessions() as db:
        after = {p: dict(_profile(db, p).computed) for p in ids}
    assert after == before


def test_windowed_trait_moves_with_the_clock(runtime: Runtime, tenant: Tenant, clock: FakeClock) -> None:
    wire_runtime(runtime)
    _custom(runtime, tenant)
    import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=ALICE)
    pid = profile_id(runtime, tenant, "alice")
    names = ["orders_30d", "spend_60d", "days_since_order", "total_orders"]
    with runtime.read_sessions() as db:
        first = traits_service.read_computed(db, tenant.workspace_id, [pid], names, NOW)[pid]
        later = NOW + timedelta(days=11)  # the order of 20 days ago leaves the 30-day window
        second = traits_service.read_computed(db, tenant.workspace_id, [pid], names, later)[pid]
        spec = next(
            traits_service.spec_of(r)
            for r in traits_service.list_definitions(db, workspace_id=tenant.workspace_id)
            if r.name == "orders_30d"
        )
        in_sql = db.scalar(select(computed_expression(spec, Profile.id, later)).where(Profile.id == pid))
    assert first == {"orders_30d": 2, "spend_60d": 50.5, "days_since_order": 5, "total_orders": 4}
    assert second == {"orders_30d": 1, "spend_60d": 20, "days_since_order": 16, "total_orders": 4}
    assert in_sql == 1


def test_definition_change_enqueues_backfill_job(runtime: Runtime, tenant: Tenant) -> None:
    from rapport.app import build_worker

    worker = build_worker(runtime)
    import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=ALICE)
    with runtime.sessions() as db:
        row = traits_service.create_definition(
            db,
            workspace_id=tenant.workspace_id,
            name="shoe_orders",
            event="order_completed",
            aggregation="count",
            conditions=[{"property": "category", "op": "=", "value": "shoes"}],
            now=NOW,
        )
        trait_id = row.id
        db.commit()
    pid = profile_id(runtime, tenant, "alice")
    worker.drain()
    with runtime.read_sessions() as db:
        assert _profile(db, pid).computed["shoe_orders"] == 2
    with runtime.sessions() as db:
        traits_service.update_definition(
            db,
            workspace_id=tenant.workspace_id,
            trait_id=trait_id,
            changes={"conditions": [{"property": "category", "op": "!=", "value": "shoes"}]},
            now=NOW,
        )
        db.commit()
    worker.drain()
    with runtime.read_sessions() as db:
        assert _profile(db, pid).computed["shoe_orders"] == 2  # the 2 bag orders
    with runtime.sessions() as db:
        traits_service.archive_definition(db, workspace_id=tenant.workspace_id, trait_id=trait_id, now=NOW)
        db.commit()
    worker.drain()
    with runtime.read_sessions() as db:
        assert "shoe_orders" not in _profile(db, pid).computed
