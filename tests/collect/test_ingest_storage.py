"""The driver-level insert stores exactly what SQLAlchemy's Core insert stores, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from rapport.collect import ingest
from rapport.models import Event
from rapport.runtime import Runtime
from tests.support.tenants import Tenant


def _row(workspace_id: int, message_id: str) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "message_id": message_id,
        "type": "track",
        "event": "Ünïcode ✓",
        "user_id": "u1",
        "anonymous_id": None,
        "profile_id": None,
        "channel": "web",
        "timestamp": datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        "received_at": datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC),
        "sent_at": None,
        "properties": {"price": 19.99, "tags": ["a", "b"], "nested": {"x": None}, "big": 10**20},
        "traits": {},
        "context": {"ip": "203.0.113.1", "emoji": "😀"},
        "extra": {"_consent_withdrawals": [{"subject": "email"}]},
        "source": "api",
        "state": 0,
    }


def test_driver_and_core_inserts_read_back_the_same(runtime: Runtime, tenant: Tenant) -> None:
    with runtime.sessions() as db:
        ingest.append_events(db, [_row(tenant.workspace_id, "driver")])
        core = _row(tenant.workspace_id, "core")
        del core["profile_id"]  # a row without every column takes the Core path
        ingest.append_events(db, [core])
        db.commit()
    with runtime.read_sessions() as db:
        stored = {e.message_id: e for e in db.scalars(select(Event))}
    fields = [c for c in _row(0, "x") if c not in {"message_id"}]
    driver, via_core = stored["driver"], stored["core"]
    for name in fields:
        assert getattr(driver, name) == getattr(via_core, name), name
    assert driver.timestamp == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert driver.timestamp.tzinfo is not None
    assert driver.properties["big"] == 10**20


def test_driver_insert_ignores_repeats(runtime: Runtime, tenant: Tenant) -> None:
    with runtime.sessions() as db:
        ingest.append_events(db, [_row(tenant.workspace_id, "same"), _row(tenant.workspace_id, "same")])
        db.commit()
    with runtime.sessions() as db:
        ingest.append_events(db, [_row(tenant.workspace_id, "same")])
        db.commit()
    with runtime.read_sessions() as db:
        assert len(db.scalars(select(Event.id)).all()) == 1
