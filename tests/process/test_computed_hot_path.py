"""The incremental hook on the processor's hot path: events that count for no trait write nothing, yet every
profile ends exactly as a full recompute leaves it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.models import Identity, Profile
from rapport.process import traits_service
from rapport.runtime import Runtime
from tests.collect.processing_support import append, process
from tests.support.statements import statements
from tests.support.tenants import Tenant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def identify(user: str, n: int, **traits: Any) -> dict[str, Any]:
    """An identify call that no computed trait counts (no channel)."""
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"{user}-id-{n}",
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        "traits": traits,
    }


def purchase(user: str, n: int, total: float) -> dict[str, Any]:
    """An online order."""
    return {
        "type": "track",
        "event": "order_completed",
        "userId": user,
        "messageId": f"{user}-o-{n}",
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        "properties": {"total": total, "category": "bags"},
        "context": {"channel": "web"},
    }


def computed(runtime: Runtime, tenant: Tenant) -> dict[str, dict[str, Any]]:
    """User id -> ``Profile.computed``."""
    with runtime.read_sessions() as db:
        rows = db.execute(
            select(Identity.value, Profile.computed)
            .join(Profile, Profile.id == Identity.profile_id)
            .where(Identity.workspace_id == tenant.workspace_id, Identity.kind == "user_id")
        ).all()
    return {user: dict(doc or {}) for user, doc in rows}


def test_identifies_leave_stored_traits_alone_and_equal_a_recompute(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    # a profile first seen through an identify still gets every stored trait (count 0, sum 0, …)
    append(runtime, ws, identify("ann", 0, hot=False), purchase("bob", 1, 20), purchase("bob", 2, 5.5))
    process(runtime)
    first = computed(runtime, tenant)
    assert first["ann"]["total_orders"] == 0 and first["ann"]["total_spend"] == 0
    assert first["bob"]["total_orders"] == 2 and first["bob"]["total_spend"] == 25.5
    assert set(first["ann"]["_state"]) == set(first["bob"]["_state"])

    profile_updates: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE PROFILES") and "computed" in statement:
            profile_updates.append(statement)

    sa_event.listen(runtime.engine, "before_cursor_execute", watch)
    try:
        append(runtime, ws, *[identify(u, 10 + i, hot=True) for i, u in enumerate(["ann", "bob"] * 3)])
        process(runtime)
    finally:
        sa_event.remove(runtime.engine, "before_cursor_execute", watch)
    assert profile_updates == []  # nothing counted: no computed write at all
    assert computed(runtime, tenant) == first

    # a counting event in a batch of non-counting ones still updates its profile
    append(runtime, ws, identify("ann", 30, hot=False), purchase("ann", 31, 12), identify("bob", 32))
    process(runtime)
    after = computed(runtime, tenant)
    assert after["ann"]["total_orders"] == 1 and after["ann"]["total_spend"] == 12
    assert after["ann"]["last_seen_web"] == (T0 + timedelta(minutes=31)).isoformat(timespec="microseconds")
    assert after["bob"] == first["bob"]

    assert traits_service.recompute(runtime, ws) == 2
    assert computed(runtime, tenant) == after


def test_a_batch_writes_each_profile_once_on_postgresql_traits_and_computed_together(
    runtime: Runtime, tenant: Tenant, backend: str
) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    append(
        runtime, ws, identify("ann", 0, tier="bronze"), identify("bob", 1, tier="bronze"), identify("cy", 2)
    )
    process(runtime)
    before = {u: dict(doc) for u, doc in computed(runtime, tenant).items()}

    # ann: a trait and an order (both written); bob: an order only (computed; seen times);
    # cy: an identify that changes nothing of hers but the trait
    with statements(runtime, lambda s: s.lstrip().upper().startswith("UPDATE PROFILES")) as writes:
        append(
            runtime,
            ws,
            identify("ann", 10, tier="gold"),
            purchase("ann", 11, 40),
            purchase("bob", 12, 7.5),
            identify("cy", 13, tier="silver"),
        )
        process(runtime)
    if backend == "postgresql":
        assert len(writes) == 1 and "computed" in writes[0], writes
    else:
        assert len(writes) >= 2  # SQLite: the traits, then the computed patch (one writer; no gain)
    after = computed(runtime, tenant)
    assert after["ann"]["total_orders"] == 1 and after["ann"]["total_spend"] == 40
    assert after["bob"]["total_orders"] == 1 and after["bob"]["total_spend"] == 7.5
    assert after["cy"] == before["cy"]
    with runtime.read_sessions() as db:
        rows = {
            user: (traits, last_seen)
            for user, traits, last_seen in db.execute(
                select(Identity.value, Profile.traits, Profile.last_seen_at)
                .join(Profile, Profile.id == Identity.profile_id)
                .where(Identity.workspace_id == ws, Identity.kind == "user_id")
            )
        }
    assert rows["ann"][0]["tier"] == "gold" and rows["cy"][0]["tier"] == "silver"
    assert rows["bob"][0]["tier"] == "bronze"
    assert rows["ann"][1] == T0 + timedelta(minutes=11)
    assert rows["bob"][1] == T0 + timedelta(minutes=12)
    # an order inside bob's seen span: a computed patch alone (neither traits nor seen times change)
    append(runtime, ws, purchase("bob", 5, 2.5))
    process(runtime)
    late = computed(runtime, tenant)
    assert late["bob"]["total_orders"] == 2 and late["bob"]["total_spend"] == 10
    with runtime.read_sessions() as db:
        bob = db.execute(
            select(Profile.traits, Profile.first_seen_at, Profile.last_seen_at)
            .join(Identity, Identity.profile_id == Profile.id)
            .where(Identity.workspace_id == ws, Identity.value == "bob")
        ).one()
    assert bob.traits["tier"] == "bronze"
    assert (bob.first_seen_at, bob.last_seen_at) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=12))
    # and nothing differs from a full recompute
    assert traits_service.recompute(runtime, ws) == 3
    assert computed(runtime, tenant) == late
