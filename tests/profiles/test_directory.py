"""The customer directory on both databases: the order of exact and prefix matches, pages that cover every
match once, merged profiles and other workspaces left out, and the dashboard's reach and consent counts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from rapport.consent import service as consent_service
from rapport.kit.clock import utcnow
from rapport.kit.pagination import Page
from rapport.models import Identity, Profile
from rapport.profiles import directory, figures
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

NAMES = ["Ann Lee", "anna bell", "ANNE Cole", "Annie Oakley", "Bob Annan", None]


def _seed(runtime: Runtime, tenant: Tenant, other: Tenant) -> dict[str, int]:
    """Profiles with names in several cases, emails, phones and identities; a tombstone; another workspace."""
    now = utcnow()
    ids: dict[str, int] = {}
    with runtime.sessions() as db:
        for n, name in enumerate(NAMES):
            profile = Profile(
                workspace_id=tenant.workspace_id,
                name=name,
                email=f"user{n}@example.com" if n != 5 else "anna.x@example.com",
                phone=f"+4479110000{n:02d}",
                traits={},
                computed={},
                trait_times={},
                last_seen_at=now - timedelta(days=40 * n),
                first_seen_at=now - timedelta(days=3 * n),
            )
            db.add(profile)
            db.flush()
            ids[name or "nameless"] = profile.id
        gone = Profile(workspace_id=tenant.workspace_id, name="Anneliese Gone", traits={}, computed={},
                       trait_times={}, merged_into_id=ids["Ann Lee"])  # fmt: skip
        elsewhere = Profile(workspace_id=other.workspace_id, name="Anna Elsewhere", traits={}, computed={},
                            trait_times={})  # fmt: skip
        db.add_all([gone, elsewhere])
        db.flush()
        ids["gone"], ids["elsewhere"] = gone.id, elsewhere.id
        db.execute(
            insert(Identity),
            [
                {"workspace_id": tenant.workspace_id, "profile_id": ids["Bob Annan"], "kind": "user_id",
                 "value": "ann"},
                {"workspace_id": tenant.workspace_id, "profile_id": ids["anna bell"], "kind": "device_token",
                 "value": "tok-1"},
                {"workspace_id": tenant.workspace_id, "profile_id": ids["Annie Oakley"], "kind": "phone",
                 "value": "+447911000003"},
            ],
        )  # fmt: skip
        for who, channel, action in (("Ann Lee", "email", "granted"), ("anna bell", "email", "withdrawn"),
                                     ("anna bell", "push", "granted"), ("Ann Lee", "sms", "granted")):  # fmt: skip
            consent_service.record(
                db,
                workspace_id=tenant.workspace_id,
                profile_id=ids[who],
                statement=consent_service.Statement(channel=channel, action=action, source="test"),
                now=now,
            )
        db.commit()
    return ids


def _search(runtime: Runtime, tenant: Tenant, query: str, limit: int = 50, offset: int = 0) -> list[str]:
    with runtime.read_sessions() as db:
        found = directory.find_customers(
            db, workspace_id=tenant.workspace_id, query=query, page=Page(limit=limit, offset=offset)
        )
        return [f"{h.profile.name or h.profile.email}:{h.matched}" for h in found.hits]


def test_exact_matches_come_first_then_names_in_every_case_then_emails(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    _seed(runtime, tenant, other_tenant)
    assert _search(runtime, tenant, "ann") == [
        "Bob Annan:user_id",  # the user id "ann", exactly
        "Ann Lee:prefix",
        "Annie Oakley:prefix",
        "anna bell:prefix",
        "ANNE Cole:prefix",
        "anna.x@example.com:prefix",  # no name; its email starts with "ann"
    ]
    assert _search(runtime, tenant, "ANNA B") == ["anna bell:prefix"]
    assert _search(runtime, tenant, "+44 7911 0000 03") == ["Annie Oakley:phone"]
    assert _search(runtime, tenant, "447911") == [f"{n or 'anna.x@example.com'}:prefix" for n in NAMES]
    assert _search(runtime, tenant, "Anneliese") == []  # merged away
    assert _search(runtime, tenant, "Anna Else") == []  # another workspace


def test_pages_cover_every_match_once(runtime: Runtime, tenant: Tenant, other_tenant: Tenant) -> None:
    _seed(runtime, tenant, other_tenant)
    everything = _search(runtime, tenant, "ann")
    paged = [
        hit for offset in range(0, 8, 2) for hit in _search(runtime, tenant, "ann", limit=2, offset=offset)
    ]
    assert paged == everything
    with runtime.read_sessions() as db:
        last = directory.find_customers(
            db, workspace_id=tenant.workspace_id, query="ann", page=Page(limit=2, offset=4)
        )
        assert not last.has_more and len(last.hits) == 2
        newest = directory.find_customers(db, workspace_id=tenant.workspace_id, query="", page=Page(limit=3))
        assert [h.profile.name for h in newest.hits] == [None, "Bob Annan", "Annie Oakley"]
        assert newest.has_more


def test_figures_count_reach_and_consent_among_live_customers(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = _seed(runtime, tenant, other_tenant)
    with runtime.read_sessions() as db:
        now = utcnow()
        result = figures.customer_figures(db, workspace_id=tenant.workspace_id, now=now)
        assert (result.total, result.known, result.with_email, result.with_phone) == (6, 6, 6, 6)
        assert result.active == 1  # last seen 0, 40, 80 … days ago
        assert result.new == 3  # first seen 0, 3, 6 days ago
        by_channel = {c.channel: c for c in result.channels}
        assert by_channel["email"].reachable == 1 and by_channel["email"].states["unsubscribed"] == 1
        assert by_channel["email"].states["never_asked"] == 4
        assert by_channel["email"].opt_in_rate == 1 / 6
        assert (by_channel["push"].addressable, by_channel["push"].reachable) == (1, 1)
        assert by_channel["sms"].reachable == 1
        relaxed = figures.customer_figures(
            db, workspace_id=tenant.workspace_id, now=now, email_requires_opt_in=False
        )
        assert {c.channel: c.reachable for c in relaxed.channels}["email"] == 5  # all but the withdrawn one
        assert db.scalar(select(Profile.merged_into_id).where(Profile.id == ids["gone"])) == ids["Ann Lee"]
