"""Lifestyle overlay: longest-prefix matching, upload re-applies to everyone, postcode changes re-apply."""

from __future__ import annotations

from sqlalchemy import select

from rapport.app import build_worker, wire_runtime
from rapport.collect.importer import import_profile_rows
from rapport.models import Identity, Profile
from rapport.process import lifestyle
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

TABLE = "key,group,affluence\nLS 1 4,City Core,5\nLS1,Leeds Centre,4\nLS,Leeds,3\n"


def _computed(runtime: Runtime, tenant: Tenant, user: str) -> dict[str, object]:
    with runtime.read_sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id, Identity.value == user
            )
        )
        profile = db.get(Profile, pid)
        assert profile is not None
        return dict(profile.computed)


def test_pure_longest_prefix() -> None:
    _columns, rows = lifestyle.parse_csv(TABLE)
    assert lifestyle.match(rows, lifestyle.normalise("ls1 4ap")) == {"group": "City Core", "affluence": 5}
    assert lifestyle.match(rows, "LS15XY") == {"group": "Leeds Centre", "affluence": 4}
    assert lifestyle.match(rows, "LS27AB") == {"group": "Leeds", "affluence": 3}
    assert lifestyle.match(rows, "M11AA") is None


def test_upload_applies_to_everyone_and_postcode_change_reapplies(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    worker = build_worker(runtime)
    import_profile_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[
            {"user_id": "a", "postcode": "LS1 4AP"},
            {"user_id": "b", "postcode": "LS27 1AB"},
            {"user_id": "c", "postcode": "M1 1AA"},
        ],
    )
    with runtime.sessions() as db:
        lifestyle.save_table(
            db, workspace_id=tenant.workspace_id, name="demo", data=TABLE.encode(), now=runtime.clock.now()
        )
        db.commit()
    worker.drain()
    assert _computed(runtime, tenant, "a")["lifestyle"] == {"group": "City Core", "affluence": 5}
    assert _computed(runtime, tenant, "b")["lifestyle"] == {"group": "Leeds", "affluence": 3}
    assert "lifestyle" not in _computed(runtime, tenant, "c")
    # the postcode changes: the after-apply hook re-matches in the same transaction
    import_profile_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[{"user_id": "a", "postcode": "LS1 9ZZ"}, {"user_id": "b", "postcode": "M1 2BB"}],
    )
    assert _computed(runtime, tenant, "a")["lifestyle"] == {"group": "Leeds Centre", "affluence": 4}
    assert "lifestyle" not in _computed(runtime, tenant, "b")


def test_sample_table_covers_the_demo_areas() -> None:
    from importlib import resources

    from rapport.synth.catalogue import TOWNS

    _columns, rows = lifestyle.parse_csv(
        resources.files("rapport.data").joinpath("lifestyle_sample.csv").read_bytes()
    )
    for town in TOWNS:
        for area in town.areas:
            assert lifestyle.match(rows, f"{area}12AB") is not None, area
