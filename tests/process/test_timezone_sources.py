"""A profile's timezone: trait > event context > location > phone, recorded with its source."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.models import Identity, Profile
from rapport.process import timezone
from rapport.runtime import Runtime
from tests.collect.processing_support import append, process
from tests.support.statements import statements
from tests.support.tenants import Tenant


def _tz(runtime: Runtime, tenant: Tenant, user: str) -> tuple[Any, Any]:
    with runtime.read_sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id, Identity.value == user
            )
        )
        p = db.get(Profile, pid)
        assert p is not None
        return p.timezone, p.timezone_source


def test_pure_precedence() -> None:
    base: dict[str, Any] = {"traits": {}, "context_timezone": None, "context_location": None, "phone": None}
    assert timezone.resolve_zone(**base) is None
    assert timezone.resolve_zone(**{**base, "phone": "+12125550123"}) == ("America/New_York", "phone")
    assert timezone.resolve_zone(**{**base, "phone": "+447400123456"}, preferred="Europe/London") == (
        "Europe/London",
        "phone",
    )
    loc = {"latitude": 48.85, "longitude": 2.35}
    assert timezone.resolve_zone(**{**base, "phone": "+12125550123", "context_location": loc}) == (
        "Europe/Paris",
        "location",
    )
    assert timezone.resolve_zone(**{**base, "context_location": loc, "context_timezone": "Asia/Tokyo"}) == (
        "Asia/Tokyo",
        "context",
    )
    assert timezone.resolve_zone(
        **{**base, "context_timezone": "Asia/Tokyo", "traits": {"timezone": "Europe/Berlin"}}
    ) == ("Europe/Berlin", "trait")
    assert timezone.resolve_zone(**{**base, "traits": {"timezone": "Mars/Olympus"}}) is None


def _sydney_events() -> list[dict[str, Any]]:
    """One event per test user whose context says Australia/Sydney."""
    return [
        {
            "type": "track",
            "event": "x",
            "userId": u,
            "messageId": f"tz-{u}",
            "context": {"timezone": "Australia/Sydney"},
        }
        for u in ("phone", "loc", "trait")
    ]


def test_sources_through_the_import_paths(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    import_profile_rows(
        runtime,
        workspace_id=ws,
        rows=[
            {"user_id": "phone", "phone": "+12125550123"},
            {"user_id": "loc", "phone": "+12125550124", "latitude": 35.68, "longitude": 139.69},
            {
                "user_id": "trait",
                "phone": "+12125550125",
                "timezone": "Europe/Berlin",
                "latitude": 35.68,
                "longitude": 139.69,
            },
        ],
    )
    assert _tz(runtime, tenant, "phone") == ("America/New_York", "phone")
    assert _tz(runtime, tenant, "loc") == ("Asia/Tokyo", "location")
    assert _tz(runtime, tenant, "trait") == ("Europe/Berlin", "trait")
    # an event's context timezone beats location and phone, but not an explicit trait
    import_event_rows(runtime, workspace_id=ws, rows=_sydney_events())
    assert _tz(runtime, tenant, "phone") == ("Australia/Sydney", "context")
    assert _tz(runtime, tenant, "loc") == ("Australia/Sydney", "context")
    assert _tz(runtime, tenant, "trait") == ("Europe/Berlin", "trait")
    # an event location is used when nothing better is known
    import_event_rows(
        runtime,
        workspace_id=ws,
        rows=[
            {
                "type": "track",
                "event": "x",
                "userId": "new",
                "messageId": "tz-new",
                "context": {"location": {"latitude": 51.5, "longitude": -0.12}},
            }
        ],
    )
    assert _tz(runtime, tenant, "new") == ("Europe/London", "location")


def _zone_facts_read(statement: str) -> bool:
    """The timezone hook's read of the zone facts (the resolution's own read also has ``trait_times``)."""
    text = statement.lstrip()
    return (
        text.upper().startswith("SELECT") and "profiles.timezone_source" in text and "trait_times" not in text
    )


def test_sources_through_the_processor_without_reading_profiles_back(
    runtime: Runtime, tenant: Tenant
) -> None:
    """A batch without merges hands the hook the profiles as its resolution left them (no read back); the
    zones come out as through the import paths."""
    wire_runtime(runtime)
    ws = tenant.workspace_id
    people = [
        {"type": "identify", "userId": "phone", "messageId": "p1", "traits": {"phone": "+12125550123"}},
        {
            "type": "identify",
            "userId": "loc",
            "messageId": "l1",
            "traits": {"phone": "+12125550124", "latitude": 35.68, "longitude": 139.69},
        },
        {
            "type": "identify",
            "userId": "trait",
            "messageId": "t1",
            "traits": {"timezone": "Europe/Berlin", "latitude": 35.68, "longitude": 139.69},
        },
    ]
    with statements(runtime, _zone_facts_read) as reads:
        append(runtime, ws, *people)
        process(runtime)
    assert reads == []
    assert _tz(runtime, tenant, "phone") == ("America/New_York", "phone")
    assert _tz(runtime, tenant, "loc") == ("Asia/Tokyo", "location")
    assert _tz(runtime, tenant, "trait") == ("Europe/Berlin", "trait")
    with statements(runtime, _zone_facts_read) as reads:
        append(runtime, ws, *_sydney_events())
        process(runtime)
    assert reads == []
    assert _tz(runtime, tenant, "phone") == ("Australia/Sydney", "context")
    assert _tz(runtime, tenant, "loc") == ("Australia/Sydney", "context")
    assert _tz(runtime, tenant, "trait") == ("Europe/Berlin", "trait")
