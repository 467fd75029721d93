"""The synthetic workspace generator: deterministic, plausible, consistent."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import UTC, datetime

import phonenumbers
import pytest

from rapport.synth.catalogue import EMAIL_DOMAINS, STORES, TOWNS
from rapport.synth.generator import (
    PROFILE_COLUMNS,
    PURCHASE_EVENT,
    SynthSpec,
    iter_chunks,
    iter_events,
    iter_profiles,
)

POSTCODE = re.compile(r"^([A-Z]{1,2})\d{1,2}[A-Z]? \d[ABD-HJLNP-UW-Z]{2}$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _digest(spec: SynthSpec, n: int = 3000) -> str:
    h = hashlib.sha256()
    for i, event in enumerate(iter_events(spec)):
        if i >= n:
            break
        h.update(json.dumps(event, sort_keys=True).encode())
    for row in iter_profiles(spec):
        h.update(json.dumps(row, sort_keys=True).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sample() -> tuple[list[dict], list[dict]]:
    profiles: list[dict] = []
    events: list[dict] = []
    for chunk in iter_chunks(SynthSpec(profiles=2000, seed=11, chunk_size=300)):
        profiles.extend(chunk.profiles)
        events.extend(chunk.events)
    return profiles, events


def test_same_seed_same_output_and_other_seed_differs() -> None:
    a = _digest(SynthSpec(profiles=400, seed=3))
    assert a == _digest(SynthSpec(profiles=400, seed=3))
    assert a != _digest(SynthSpec(profiles=400, seed=4))
    assert a != _digest(SynthSpec(profiles=400, seed=3, reference_date=datetime(2026, 6, 1, tzinfo=UTC)))


def test_smaller_workspace_is_a_prefix_whatever_the_chunk_size() -> None:
    small = list(iter_events(SynthSpec(profiles=50, seed=5, chunk_size=7)))
    big = list(iter_events(SynthSpec(profiles=120, seed=5, chunk_size=1000)))
    assert big[: len(small)] == small


def test_chunks_hold_chunk_size_profiles() -> None:
    chunks = list(iter_chunks(SynthSpec(profiles=25, chunk_size=10)))
    assert [len(c.profiles) for c in chunks] == [10, 10, 5]
    assert [c.start for c in chunks] == [0, 10, 20]


def test_profile_rows_are_complete_unique_and_plausible(sample: tuple[list[dict], list[dict]]) -> None:
    profiles, _ = sample
    towns = {t.city: t for t in TOWNS}
    stores = {s.id: s for s in STORES}
    assert all(tuple(p) == PROFILE_COLUMNS for p in profiles)
    assert len({p["user_id"] for p in profiles}) == len(profiles)
    assert len({p["email"] for p in profiles}) == len(profiles)
    assert len({p["phone"] for p in profiles}) == len(profiles)
    for p in profiles:
        town = towns[p["city"]]
        match = POSTCODE.match(p["postcode"])
        assert match and match.group(1) in town.areas, p["postcode"]
        assert abs(p["latitude"] - town.latitude) < 0.3 and abs(p["longitude"] - town.longitude) < 0.4
        assert stores[p["home_store"]].city == p["city"]
        assert p["email"].split("@")[1] in EMAIL_DOMAINS
        number = phonenumbers.parse(p["phone"])
        assert p["phone"].startswith("+447") and phonenumbers.is_valid_number(number), p["phone"]
        assert "1940-01-01" < p["birthday"] < "2008-11-02"
        assert p["signup_date"] < "2026-11-01"
    consent = Counter(p["email_consent"] for p in profiles)
    assert set(consent) == {"subscribed", "unsubscribed", "never_asked"}
    assert 0.45 < consent["subscribed"] / len(profiles) < 0.65
    assert set(Counter(p["sms_consent"] for p in profiles)) == {"subscribed", "unsubscribed", "never_asked"}
    with_contract = sum(1 for p in profiles if p["contract_end"])
    assert 0.15 < with_contract / len(profiles) < 0.35
    assert {p["loyalty_tier"] for p in profiles} == {"bronze", "silver", "gold"}
    assert len({p["city"] for p in profiles}) >= 15


def test_events_are_segment_messages_in_the_window(sample: tuple[list[dict], list[dict]]) -> None:
    profiles, events = sample
    per_profile = len(events) / len(profiles)
    assert 8 <= per_profile <= 14
    assert len({e["messageId"] for e in events}) == len(events)
    for e in events:
        assert e["type"] in {"track", "page", "screen", "identify"}
        assert e.get("userId") or e.get("anonymousId")
        assert ISO.match(e["timestamp"]) and "2025-11-01T00" <= e["timestamp"] < "2026-11-01T00"
        ctx = e["context"]
        assert ctx["channel"] in {"web", "app", "store", "email", "sms"}
        assert ctx["timezone"] == "Europe/London" and ctx["location"]["country"] == "United Kingdom"
        if e["type"] == "track":
            assert e["event"]
    names = Counter(e.get("event") or e["type"] for e in events)
    for name in ("page", "screen", "product_viewed", PURCHASE_EVENT, "email_delivered", "email_opened",
                 "email_clicked", "sms_delivered", "identify", "signed_up"):  # fmt: skip
        assert names[name] > 0, name
    assert names["email_opened"] < names["email_delivered"]
    assert names["email_clicked"] < names["email_opened"]


def test_each_customers_events_are_in_time_order(sample: tuple[list[dict], list[dict]]) -> None:
    _, events = sample
    last: dict[str, str] = {}
    for e in events:
        if e.get("userId"):
            assert e["timestamp"] >= last.get(e["userId"], "")
            last[e["userId"]] = e["timestamp"]


def test_purchases_are_skewed_and_well_formed(sample: tuple[list[dict], list[dict]]) -> None:
    profiles, events = sample
    orders = [e for e in events if e.get("event") == PURCHASE_EVENT]
    per_customer = Counter(e["userId"] for e in orders)
    share_buying = len(per_customer) / len(profiles)
    assert 0.3 < share_buying < 0.55
    counts = sorted(per_customer.values(), reverse=True)
    top_decile = sum(counts[: len(counts) // 10])
    assert top_decile / sum(counts) > 0.25  # a few heavy customers
    assert Counter(counts)[1] > Counter(counts)[3]  # many light ones
    stores = {s.id for s in STORES}
    sources = Counter(e["properties"]["source"] for e in orders)
    assert set(sources) == {"store", "web", "app"}
    for e in orders:
        p = e["properties"]
        assert p["currency"] == "GBP" and p["total"] > 0 and p["items"] == len(p["products"])
        assert p["category"] == p["products"][0]["category"]
        if p["source"] == "store":
            assert p["store_id"] in stores and e["context"]["channel"] == "store"


def test_some_anonymous_visitors_are_identified_later(sample: tuple[list[dict], list[dict]]) -> None:
    _, events = sample
    first_anonymous: dict[str, str] = {}
    for e in events:
        if e.get("anonymousId") and not e.get("userId"):
            first_anonymous.setdefault(e["anonymousId"], e["timestamp"])
    identifies = [e for e in events if e["type"] == "identify"]
    assert identifies
    for e in identifies:
        assert e["anonymousId"] in first_anonymous
        assert first_anonymous[e["anonymousId"]] <= e["timestamp"]
        assert e["traits"]["email"]
    identified = {e["anonymousId"] for e in identifies}
    assert len(set(first_anonymous) - identified) > 0  # some never identify


def test_memory_stays_flat_while_streaming() -> None:
    import tracemalloc

    def peak(n: int) -> int:
        tracemalloc.start()
        for _ in iter_events(SynthSpec(profiles=n, seed=1, chunk_size=100)):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, big = peak(300), peak(1200)
    assert big < small * 1.5  # four times the customers, about the same memory: one chunk at a time
