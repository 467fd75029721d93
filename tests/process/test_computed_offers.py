"""``computed.Offers``: the traits an event counts for, decided per kind of event, answer as the definition
(``TraitSpec.accepts`` and ``value_of``) does for every event."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from rapport.process.computed import (
    ANY_EVENT,
    PURCHASE,
    PURCHASE_VALUE,
    Condition,
    EventView,
    Offers,
    PurchaseSettings,
    TraitSpec,
    builtin_specs,
)

NAMES = ["order_completed", "Order Completed", "product_viewed", "email_delivered", "email_opened", None]
KINDS = ["track", "page", "identify"]
CHANNELS = ["web", "app", "store", "email", "sms"]


def _specs() -> list[TraitSpec]:
    """The built-ins, plus definitions whose conditions mix columns (every operator) and properties."""
    column_conditions = [
        Condition("channel", "=", "web"),
        Condition("channel", "!=", "store"),
        Condition("channel", "in", ["app", "sms"]),
        Condition("channel", "contains", "m"),
        Condition("channel", ">=", "sms"),
        Condition("type", "=", "track"),
        Condition("type", "!=", "page"),
        Condition("event", "!=", "email_delivered"),
        Condition("event", "in", ["email_opened", "product_viewed"]),
        Condition("event", "contains", "order"),
        Condition("event", "<", "f"),
    ]
    property_conditions = [
        Condition("total", ">", 20),
        Condition("category", "=", "shoes"),
        Condition("category", "!=", "bags"),
        Condition("context.locale", "=", "fr-FR"),
    ]
    specs = [spec for spec, _ in builtin_specs()]
    events = [ANY_EVENT, PURCHASE, "product_viewed", "email_opened"]
    n = 0
    for event in events:
        for cond in column_conditions:
            for extra in [None, *property_conditions]:
                conditions = (cond,) if extra is None else (cond, extra)
                aggregation, prop = [("count", None), ("sum", PURCHASE_VALUE), ("last_value", "category")][
                    n % 3
                ]
                specs.append(TraitSpec(f"t{n}", event, aggregation, prop, conditions))
                n += 1
        for extra in property_conditions:
            specs.append(TraitSpec(f"t{n}", event, "max", "total", (extra,)))
            n += 1
    return specs


def _event(rnd: random.Random, i: int) -> EventView:
    props: dict[str, Any] = {}
    if rnd.random() < 0.8:
        props["total"] = rnd.choice([5, 25, 40.5, "30", None])
    if rnd.random() < 0.8:
        props["category"] = rnd.choice(["shoes", "bags", "hats"])
    context = {"locale": rnd.choice(["fr-FR", "en-GB"])} if rnd.random() < 0.7 else {}
    return EventView(
        id=i,
        profile_id=1,
        event=rnd.choice(NAMES),
        type=rnd.choice(KINDS),
        channel=rnd.choice(CHANNELS),
        timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
        properties=props,
        context=context,
    )


def test_an_event_counts_for_the_traits_the_definition_accepts_with_the_same_values() -> None:
    rnd = random.Random(11)
    purchase = PurchaseSettings(events=("order_completed", "Order Completed"), value_property="total")
    specs = _specs()
    offers = Offers(specs, purchase)
    counted_by: Counter[str] = Counter()
    events = [_event(rnd, i) for i in range(3000)]
    for e in events:
        expected = [(s, s.value_of(e, purchase)) for s in specs if s.accepts(e, purchase)]
        assert offers.counted(e) == expected, e
        counted_by.update(s.name for s, _ in expected)
    # every condition was put to the test: each definition refused events, and each condition was met by
    # some event a definition counted (a few pairs contradict each other, e.g. product_viewed and "order")
    assert all(counted_by[s.name] < len(events) for s in specs if s.conditions or s.event != ANY_EVENT)
    met = {repr(c) for s in specs if counted_by[s.name] for c in s.conditions}
    assert met == {repr(c) for s in specs for c in s.conditions}
    assert {s.name for s, _ in builtin_specs()} <= set(counted_by)
    # the purchase value follows the workspace's setting
    sums = [v for e in events for s, v in offers.counted(e) if s.name == "total_spend"]
    assert sums and sums == [e.properties.get("total") for e in events if e.event in purchase.events]


def test_the_kinds_are_decided_once_per_name_type_and_channel() -> None:
    purchase = PurchaseSettings()
    specs = [spec for spec, _ in builtin_specs()]
    offers = Offers(specs, purchase)
    rnd = random.Random(3)
    for i in range(500):
        offers.counted(_event(rnd, i))
    # a stream of many events has few kinds: 6 names x 3 types x 5 channels at most
    assert 0 < len(offers._kinds) <= len(NAMES) * len(KINDS) * len(CHANNELS)
    web = EventView(1, 1, "page_viewed", "page", "web", datetime(2026, 1, 1, tzinfo=UTC), {}, {})
    assert sorted(s.name for s, _ in offers.counted(web)) == ["last_seen_web", "tenure_days"]
    delivered = EventView(2, 1, "email_delivered", "track", "email", datetime(2026, 1, 1, tzinfo=UTC), {}, {})
    assert [s.name for s, _ in offers.counted(delivered)] == ["tenure_days"]
