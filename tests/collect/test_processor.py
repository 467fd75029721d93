"""The processor: identify/alias linking, merges that lose nothing, last write wins, rules, idempotency."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rapport.collect.processor import BatchApplied, Processor, hooks_for
from rapport.models.event import PENDING, PROCESSED
from rapport.runtime import Runtime
from rapport.worker.runner import HandlerRegistry, Worker
from tests.collect.processing_support import (
    all_profiles,
    append,
    at,
    events,
    history,
    identities,
    live_profiles,
    merges,
    process,
    set_identity_rules,
)
from tests.support.statements import statements
from tests.support.tenants import Tenant


def test_identify_links_the_anonymous_visitor_to_the_known_person(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "page", "anonymousId": "anon-1", "name": "Home", "timestamp": at(0)},
        {"type": "track", "anonymousId": "anon-1", "event": "Added", "timestamp": at(1)},
    )
    process(runtime)
    [visitor] = live_profiles(runtime, ws)
    append(
        runtime,
        ws,
        {
            "type": "identify",
            "userId": "u-1",
            "anonymousId": "anon-1",
            "traits": {"email": " Ann@Example.ORG ", "first_name": "Ann", "phone": "07911 123456"},
            "timestamp": at(2),
        },
        {"type": "track", "userId": "u-1", "event": "Order Completed", "timestamp": at(3)},
    )
    process(runtime)
    [person] = live_profiles(runtime, ws)
    assert person.id == visitor.id
    assert identities(runtime, ws) == {
        ("anonymous_id", "anon-1"): person.id,
        ("user_id", "u-1"): person.id,
        ("email", "ann@example.org"): person.id,
        ("phone", "+447911123456"): person.id,
    }
    assert [(e.profile_id, e.state) for e in events(runtime, ws)] == [(person.id, PROCESSED)] * 4
    assert person.email == "ann@example.org" and person.phone == "+447911123456" and person.name == "Ann"
    assert person.first_seen_at.isoformat() == at(0) and person.last_seen_at.isoformat() == at(3)


def test_alias_merges_two_known_profiles_and_nothing_is_lost(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {
            "type": "identify",
            "userId": "old",
            "traits": {"plan": "free", "city": "Leeds"},
            "timestamp": at(0),
        },
        {"type": "track", "userId": "old", "event": "A", "timestamp": at(1)},
        {"type": "track", "anonymousId": "dev-1", "userId": "old", "event": "B", "timestamp": at(2)},
    )
    process(runtime)
    append(
        runtime,
        ws,
        {
            "type": "identify",
            "userId": "new",
            "traits": {"plan": "pro", "email": "n@x.io"},
            "timestamp": at(5),
        },
        {"type": "track", "userId": "new", "event": "C", "timestamp": at(6)},
    )
    process(runtime)
    first, second = live_profiles(runtime, ws)
    append(runtime, ws, {"type": "alias", "previousId": "old", "userId": "new", "timestamp": at(7)})
    process(runtime)

    [survivor] = live_profiles(runtime, ws)
    assert survivor.id == first.id  # the older profile survives
    every = events(runtime, ws)
    assert len(every) == 6
    assert {e.profile_id for e in every} == {survivor.id}
    assert set(identities(runtime, ws).items()) == {
        (("user_id", "old"), survivor.id),
        (("user_id", "new"), survivor.id),
        (("anonymous_id", "dev-1"), survivor.id),
        (("email", "n@x.io"), survivor.id),
    }
    assert survivor.traits == {"plan": "pro", "city": "Leeds", "email": "n@x.io"}
    assert {h.value for h in history(runtime, survivor.id, "plan")} == {"free", "pro"}
    tombstone = next(p for p in all_profiles(runtime, ws) if p.id == second.id)
    assert tombstone.merged_into_id == survivor.id and tombstone.traits == {}
    [merge] = merges(runtime, ws)
    assert (merge.survivor_id, merge.merged_id, merge.reason) == (survivor.id, second.id, "identifier:alias")
    assert merge.details == {"moved_events": 2, "moved_identities": 2}


def test_an_email_shared_by_two_known_profiles_merges_them(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "crm-1", "traits": {"email": "p@x.io"}, "timestamp": at(0)},
        {"type": "identify", "userId": "shop-9", "timestamp": at(1)},
        {"type": "track", "userId": "shop-9", "event": "Bought", "timestamp": at(2)},
    )
    process(runtime)
    assert len(live_profiles(runtime, ws)) == 2
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "shop-9", "traits": {"email": "P@x.io"}, "timestamp": at(3)},
    )
    process(runtime)
    [person] = live_profiles(runtime, ws)
    assert {e.profile_id for e in events(runtime, ws)} == {person.id}
    assert merges(runtime, ws)[0].reason == "identifier:email"


def test_an_anonymous_id_does_not_merge_two_known_people_by_default(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "alice", "anonymousId": "shared-tablet", "timestamp": at(0)},
        {"type": "identify", "userId": "bob", "anonymousId": "shared-tablet", "timestamp": at(1)},
    )
    process(runtime)
    alice, bob = live_profiles(runtime, ws)
    ids = identities(runtime, ws)
    assert ids[("user_id", "alice")] == alice.id and ids[("user_id", "bob")] == bob.id
    assert ids[("anonymous_id", "shared-tablet")] == alice.id  # stays where it was first seen
    assert merges(runtime, ws) == []
    assert [e.profile_id for e in events(runtime, ws)] == [alice.id, bob.id]


def test_an_alias_sent_with_the_identify_it_renames_joins_that_person(
    runtime: Runtime, tenant: Tenant
) -> None:
    # An SDK sends identify(u1) and alias(u1, u2) in one request: both are pending in one batch, and u1 is
    # not stored as a user id yet when the alias's touch is built.
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "timestamp": at(0)},
        {"type": "alias", "previousId": "u1", "userId": "u2", "timestamp": at(1)},
    )
    process(runtime)
    [person] = live_profiles(runtime, ws)
    assert identities(runtime, ws) == {
        ("anonymous_id", "a1"): person.id,
        ("user_id", "u1"): person.id,
        ("user_id", "u2"): person.id,
    }


def test_an_identify_takes_its_traits_from_context_traits_as_rudderstack_sends_them(
    runtime: Runtime, tenant: Tenant
) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {
            "type": "identify",
            "userId": "u1",
            "context": {"traits": {"email": "Ann@Example.org", "plan": "pro", "tier": "silver"}},
            "traits": {"tier": "gold"},  # the root's value wins a clash
            "timestamp": at(0),
        },
    )
    process(runtime)
    [person] = live_profiles(runtime, ws)
    assert person.traits == {"email": "Ann@Example.org", "plan": "pro", "tier": "gold"}
    assert identities(runtime, ws)[("email", "ann@example.org")] == person.id


def test_merge_rules_limit_identifiers_per_kind(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    set_identity_rules(runtime, ws, {"max_per_kind": {"user_id": 1}})
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "u1", "traits": {"email": "same@x.io"}, "timestamp": at(0)},
        {"type": "identify", "userId": "u2", "traits": {"email": "same@x.io"}, "timestamp": at(1)},
        {"type": "alias", "previousId": "u1", "userId": "u2", "timestamp": at(2)},
    )
    process(runtime)
    first, second = live_profiles(runtime, ws)
    assert merges(runtime, ws) == []
    ids = identities(runtime, ws)
    assert ids[("user_id", "u1")] == first.id and ids[("user_id", "u2")] == second.id
    assert ids[("email", "same@x.io")] == first.id


def test_merge_kinds_exclude_email(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    set_identity_rules(runtime, ws, {"merge_kinds": ["user_id"]})
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "u1", "traits": {"email": "same@x.io"}, "timestamp": at(0)},
        {"type": "identify", "userId": "u2", "traits": {"email": "same@x.io"}, "timestamp": at(1)},
    )
    process(runtime)
    assert len(live_profiles(runtime, ws)) == 2
    assert merges(runtime, ws) == []


def test_traits_are_last_write_wins_by_event_time_with_history(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "identify", "userId": "u", "traits": {"tier": "gold", "city": "York"}, "timestamp": at(10)},
        # arrives later but happened earlier: must not win
        {"type": "identify", "userId": "u", "traits": {"tier": "bronze"}, "timestamp": at(5)},
        {"type": "identify", "userId": "u", "traits": {"city": "Hull"}, "timestamp": at(20)},
    )
    process(runtime)
    [p] = live_profiles(runtime, ws)
    assert p.traits == {"tier": "gold", "city": "Hull"}
    assert p.trait_times["tier"].startswith(at(10)[:19])
    assert [(h.previous, h.value) for h in history(runtime, p.id, "city")] == [
        (None, "York"),
        ("York", "Hull"),
    ]
    assert [h.value for h in history(runtime, p.id, "tier")] == ["gold"]


def test_junk_identifiers_never_link_people(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {
            "type": "identify",
            "userId": "undefined",
            "anonymousId": "a1",
            "traits": {"email": "test@test.com"},
        },
        {
            "type": "identify",
            "userId": "undefined",
            "anonymousId": "a2",
            "traits": {"email": "test@test.com"},
        },
        {"type": "track", "userId": "null", "event": "X"},
    )
    process(runtime)
    assert len(live_profiles(runtime, ws)) == 2
    assert set(identities(runtime, ws)) == {("anonymous_id", "a1"), ("anonymous_id", "a2")}
    last = events(runtime, ws)[-1]
    assert last.state == PROCESSED and last.profile_id is None


def test_processing_is_idempotent(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        *[{"type": "track", "userId": f"u{i % 3}", "event": "E", "timestamp": at(i)} for i in range(20)],
    )
    assert process(runtime) == 20
    before = [(p.id, p.traits, p.last_seen_at) for p in all_profiles(runtime, ws)]
    assert process(runtime) == 0
    assert [(p.id, p.traits, p.last_seen_at) for p in all_profiles(runtime, ws)] == before
    assert all(e.state == PROCESSED for e in events(runtime, ws))


def test_after_apply_hooks_see_each_batch(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    seen: list[tuple[int, set[int], dict[int, set[str]]]] = []
    hooks_for(runtime).after_apply.append(
        lambda b: seen.append((len(b.event_ids), set(b.profile_ids), dict(b.changed_traits)))
    )
    append(runtime, ws, {"type": "identify", "userId": "u", "traits": {"plan": "pro"}})
    process(runtime)
    [p] = live_profiles(runtime, ws)
    assert seen == [(1, {p.id}, {p.id: {"plan"}})]


def test_a_failing_event_is_isolated_and_the_rest_applied(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id

    def explode(batch: BatchApplied) -> None:
        if (
            any(p for p in batch.profile_ids)
            and batch.changed_traits
            and any("boom" in names for names in batch.changed_traits.values())
        ):
            raise RuntimeError("hook failed")

    hooks_for(runtime).after_apply.append(explode)
    append(
        runtime,
        ws,
        {"type": "track", "userId": "a", "event": "ok"},
        {"type": "identify", "userId": "b", "traits": {"boom": 1}},
        {"type": "track", "userId": "c", "event": "ok"},
    )
    Processor(runtime, batch_size=10).drain()
    states = [
        (e.user_id, e.state, e.profile_id is not None, e.extra.get("processing_error"))
        for e in events(runtime, ws)
    ]
    assert states == [
        ("a", PROCESSED, True, None),
        ("b", PROCESSED, False, "RuntimeError"),
        ("c", PROCESSED, True, None),
    ]


def test_worker_tick_applies_an_event_within_a_second(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(Processor(runtime).tick)
    worker.start_thread()
    try:
        append(runtime, ws, {"type": "identify", "userId": "fresh", "traits": {"plan": "pro"}})
        started = time.monotonic()
        while time.monotonic() - started < 5:
            if events(runtime, ws)[0].state == PROCESSED:
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    finally:
        worker.stop_thread()
    assert events(runtime, ws)[0].state == PROCESSED
    assert elapsed < 1.0
    assert live_profiles(runtime, ws)[0].traits == {"plan": "pro"}


def test_workspaces_are_resolved_separately(runtime: Runtime, tenant: Tenant, other_tenant: Tenant) -> None:
    msg: dict[str, Any] = {"type": "identify", "userId": "same-id", "traits": {"email": "same@x.io"}}
    append(runtime, tenant.workspace_id, msg)
    append(runtime, other_tenant.workspace_id, msg)
    process(runtime)
    [a] = live_profiles(runtime, tenant.workspace_id)
    [b] = live_profiles(runtime, other_tenant.workspace_id)
    assert a.id != b.id
    assert events(runtime, tenant.workspace_id)[0].profile_id == a.id
    assert events(runtime, other_tenant.workspace_id)[0].profile_id == b.id


def test_concurrent_processors_apply_every_event_once(runtime: Runtime, tenant: Tenant, backend: str) -> None:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        *[
            {"type": "identify", "userId": f"u{i % 25}", "anonymousId": f"a{i % 40}", "timestamp": at(i)}
            for i in range(300)
        ],
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Processor(runtime, batch_size=20).drain()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    process(runtime)
    every = events(runtime, ws)
    assert all(e.state == PROCESSED for e in every) and len(every) == 300
    live = {p.id for p in live_profiles(runtime, ws)}
    assert {e.profile_id for e in every} <= live
    ids = identities(runtime, ws)
    assert set(ids.values()) <= live
    assert len([k for k in ids if k[0] == "user_id"]) == 25
    assert len([k for k in ids if k[0] == "anonymous_id"]) == 40


@pytest.mark.parametrize("kind", ["pending"])
def test_pending_state_is_the_default_of_appended_events(runtime: Runtime, tenant: Tenant, kind: str) -> None:
    append(runtime, tenant.workspace_id, {"type": "track", "userId": "u", "event": "E"})
    assert events(runtime, tenant.workspace_id)[0].state == PENDING


def test_identity_counts_are_read_only_for_a_batch_that_may_attach_or_merge(
    runtime: Runtime, tenant: Tenant
) -> None:
    """A known customer acting again attaches, links and merges nothing, so the batch skips the identity
    counts; a batch that could attach an identifier to a stored profile reads them, and the limit per kind
    holds against identifiers stored by earlier batches."""
    ws = tenant.workspace_id
    set_identity_rules(runtime, ws, {"max_per_kind": {"user_id": 1}})
    append(
        runtime, ws, {"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}, "timestamp": at(0)}
    )
    process(runtime)
    [person] = live_profiles(runtime, ws)

    append(runtime, ws, {"type": "track", "event": "Viewed", "userId": "u1", "timestamp": at(1)})
    with statements(runtime, lambda s: "count(*)" in s and "FROM identities" in s) as seen:
        process(runtime)
    assert seen == []

    # the stored email is the person's; a second user id may not join it (user_id: at most 1)
    append(
        runtime, ws, {"type": "identify", "userId": "u9", "traits": {"email": "a@x.io"}, "timestamp": at(2)}
    )
    with statements(runtime, lambda s: "count(*)" in s and "FROM identities" in s) as seen:
        process(runtime)
    assert len(seen) == 1
    ids = identities(runtime, ws)
    assert ids[("user_id", "u1")] == person.id and ids[("email", "a@x.io")] == person.id
    assert ids[("user_id", "u9")] != person.id
