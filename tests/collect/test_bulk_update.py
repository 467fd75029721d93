"""``bulk_update``: many rows by primary key in one statement (PostgreSQL) or one executemany (SQLite),
with JSON, text, time and null values stored as the ORM would store them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from rapport.collect.resolution import bulk_update
from rapport.models import Profile
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

_PROFILES = Profile.__table__

WHEN = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)
#: The same instant written with another offset: stored and read back as that instant in UTC.
WHEN_PARIS = WHEN.astimezone(timezone(timedelta(hours=1)))


def _profiles(runtime: Runtime, tenant: Tenant, n: int) -> list[int]:
    with runtime.sessions() as db:
        rows = [
            Profile(workspace_id=tenant.workspace_id, traits={"n": i}, email=f"p{i}@x.io") for i in range(n)
        ]
        db.add_all(rows)
        db.commit()
        return [r.id for r in rows]


def test_bulk_update_sets_each_row_its_own_values(runtime: Runtime, tenant: Tenant) -> None:
    a, b, untouched = _profiles(runtime, tenant, 3)
    with runtime.sessions() as db:
        bulk_update(
            db,
            _PROFILES,  # type: ignore[arg-type]
            [
                {"id": a, "traits": {"city": "Leeds", "tags": ["x", 1, None], "big": 2**70}, "email": "é@x.io",
                 "timezone": None, "last_seen_at": WHEN},
                {"id": b, "traits": {"f": 0.1, "third": 1 / 3, "s": "007", "e": 1e-300}, "email": None,
                 "timezone": "Europe/London", "last_seen_at": WHEN_PARIS},
            ],
        )  # fmt: skip
        bulk_update(db, _PROFILES, [])  # type: ignore[arg-type]  # nothing to do: no statement
        db.commit()
    with runtime.read_sessions() as db:
        got = {
            r.id: r
            for r in db.execute(
                select(Profile.id, Profile.traits, Profile.email, Profile.timezone, Profile.last_seen_at)
            )
        }
    assert got[a].traits == {"city": "Leeds", "tags": ["x", 1, None], "big": 2**70}
    assert (got[a].email, got[a].timezone, got[a].last_seen_at) == ("é@x.io", None, WHEN)
    assert got[b].traits == {
        "f": 0.1,
        "third": 1 / 3,
        "s": "007",
        "e": 1e-300,
    }  # floats exact, text stays text
    assert (got[b].email, got[b].timezone, got[b].last_seen_at) == (None, "Europe/London", WHEN)
    assert (got[untouched].traits, got[untouched].email) == ({"n": 2}, "p2@x.io")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_bulk_update_refuses_a_value_longer_than_its_column_instead_of_cutting_it(
    runtime: Runtime, tenant: Tenant
) -> None:
    [pid] = _profiles(runtime, tenant, 1)
    with runtime.sessions() as db, pytest.raises(DBAPIError):
        bulk_update(db, _PROFILES, [{"id": pid, "timezone": "Z" * 65}])  # type: ignore[arg-type]
