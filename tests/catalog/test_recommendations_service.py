"""Recommendations through the service on both databases: the hand-built shop's exact answers, the
favourite-category trait, workspace isolation, and the bulk call for many people against an oracle."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import timedelta

from rapport.catalog import service
from rapport.catalog.recommend import Item, Purchase
from rapport.process import traits_service
from rapport.runtime import Runtime
from tests.catalog.dataset import ITEMS, NOW, days_ago, purchases
from tests.catalog.seed import seed_products, seed_profiles, seed_purchases
from tests.support.tenants import Tenant, make_tenant


def _seed_shop(
    runtime: Runtime, tenant: Tenant, computed: dict[int, dict[str, object]] | None = None
) -> list[int]:
    """Seed the hand-built shop; returns the profile ids of customers 1..7 and a newcomer (index 7)."""
    ids = seed_profiles(runtime, tenant.workspace_id, 8, computed)
    seed_products(runtime, tenant.workspace_id, ITEMS, NOW)
    mapping = {c: ids[c - 1] for c in range(1, 8)}
    seed_purchases(runtime, tenant.workspace_id, purchases(mapping))
    return ids


def _picks(found: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(p["product_id"], p["reason"]) for p in found]


def test_the_hand_built_shop_gives_the_worked_answers(runtime: Runtime, tenant: Tenant) -> None:
    ids = _seed_shop(runtime, tenant)
    with runtime.read_sessions() as db:
        found = service.recommendations_for(
            db, workspace_id=tenant.workspace_id, profile_ids=ids, limit=3, now=NOW
        )
    assert list(found) == ids
    assert _picks(found[ids[4]]) == [
        ("C", "bought_together"),
        ("B", "bought_together"),
        ("D", "popular_in_category"),
    ]
    assert _picks(found[ids[0]]) == [("C", "bought_together"), ("D", "bought_together"), ("E", "popular")]
    assert _picks(found[ids[3]]) == [("A", "bought_together"), ("C", "bought_together"), ("E", "popular")]
    assert _picks(found[ids[7]]) == [("A", "popular"), ("B", "popular"), ("C", "popular")]
    assert found[ids[4]][0] == {
        "product_id": "C", "name": "Cup", "category": "Kitchen", "price": 4.0, "currency": "GBP",
        "url": "", "image_url": "", "id": "C", "image": "", "stock": 3, "reason": "bought_together",
    }  # fmt: skip


def test_the_favourite_category_trait_is_used(runtime: Runtime, tenant: Tenant) -> None:
    ids = _seed_shop(runtime, tenant, computed={6: {"favourite_category": "Kitchen"}})
    with runtime.sessions() as db:
        traits_service.ensure_builtins(db, workspace_id=tenant.workspace_id, now=NOW)
        db.commit()
    with runtime.read_sessions() as db:
        found = service.recommendations_for(
            db, workspace_id=tenant.workspace_id, profile_ids=[ids[6]], now=NOW
        )
    # customer 7 bought F (Shoes); the stored trait says Kitchen, so A and B come as its top sellers
    assert _picks(found[ids[6]]) == [
        ("E", "bought_together"),
        ("A", "popular_in_category"),
        ("B", "popular_in_category"),
    ]


def test_out_of_stock_changes_take_effect_and_other_events_do_not_count(
    runtime: Runtime, tenant: Tenant
) -> None:
    ids = _seed_shop(runtime, tenant)
    # viewing is not buying; a purchase event of another name is not a purchase
    seed_purchases(
        runtime, tenant.workspace_id, [Purchase(ids[7], days_ago(1), ("H",))] * 3, event="product_viewed"
    )
    with runtime.sessions() as db:
        service.upsert_product(
            db, workspace_id=tenant.workspace_id, body={"id": "C", "name": "Cup", "stock": 0}, now=NOW
        )
        db.commit()
    with runtime.read_sessions() as db:
        found = service.recommendations_for(
            db, workspace_id=tenant.workspace_id, profile_ids=[ids[4], ids[7]], now=NOW
        )
    assert _picks(found[ids[4]]) == [("B", "bought_together"), ("D", "popular_in_category"), ("E", "popular")]
    assert _picks(found[ids[7]]) == [("A", "popular"), ("B", "popular"), ("E", "popular")]


def test_another_workspace_learns_nothing_from_this_one(runtime: Runtime, tenant: Tenant) -> None:
    _seed_shop(runtime, tenant)
    other = make_tenant(runtime, "globex")
    seed_products(runtime, other.workspace_id, ITEMS, NOW)
    (newcomer,) = seed_profiles(runtime, other.workspace_id, 1)
    with runtime.read_sessions() as db:
        found = service.recommendations_for(
            db, workspace_id=other.workspace_id, profile_ids=[newcomer], now=NOW
        )
    assert found == {newcomer: []}  # no purchases in that workspace: nothing is popular there


def _oracle(
    items: list[Item], bought: dict[int, set[str]], window: Counter[str], total: Counter[str],
    targets: list[int], limit: int,
) -> dict[int, list[tuple[str, str]]]:  # fmt: skip
    """Recommendations written out from the spec, without matrices or pruning."""
    n = Counter(pid for products in bought.values() for pid in products)
    both: Counter[tuple[str, str]] = Counter()
    for products in bought.values():
        for a in products:
            for b in products:
                if a != b:
                    both[(a, b)] += 1
    by_id = {it.product_id: it for it in items}
    ok = {it.product_id for it in items if it.stock != 0}
    popular = sorted(total, key=lambda p: (-window[p], -total[p], p))
    out: dict[int, list[tuple[str, str]]] = {}
    for t in targets:
        mine = bought.get(t, set())
        scores = {
            j: round(sum(both[(i, j)] / math.sqrt(n[i] * n[j]) for i in mine if both[(i, j)]), 9)
            for j in ok - mine
        }
        rank = {p: k for k, p in enumerate(popular)}
        picks = [(j, "bought_together") for j in sorted((j for j in scores if scores[j] > 0),
                 key=lambda j: (-scores[j], rank.get(j, len(items)), j))][:limit]  # fmt: skip
        taken = mine | {j for j, _ in picks}
        cats = Counter(by_id[p].category for p in mine)
        favourite = min(cats, key=lambda c: (-cats[c], c)) if cats else None
        for reason, pool in (("popular_in_category", [p for p in popular if by_id[p].category == favourite]),
                             ("popular", popular)):  # fmt: skip
            for p in pool:
                if len(picks) < limit and p not in taken and p in ok:
                    picks.append((p, reason))
                    taken.add(p)
        out[t] = picks
    return out


def test_the_bulk_call_for_many_people_matches_an_oracle(runtime: Runtime, tenant: Tenant) -> None:
    rnd = random.Random(7)
    categories = ["Home", "Garden", "Toys", "Books"]
    items = [
        Item(
            f"P{k:03d}", f"Product {k}", categories[k % 4], float(k), "GBP", "", "", rnd.choice([None, 0, 5])
        )
        for k in range(40)
    ]
    ids = seed_profiles(runtime, tenant.workspace_id, 1500)
    seed_products(runtime, tenant.workspace_id, items, NOW)
    weights = [1 / (k + 1) for k in range(40)]
    orders = []
    for pid in ids[:1200]:
        for _ in range(rnd.choice([1, 1, 2, 3])):
            basket = tuple(
                {items[k].product_id for k in rnd.choices(range(40), weights, k=rnd.choice([1, 2, 3]))}
            )
            orders.append(Purchase(pid, NOW - timedelta(days=rnd.uniform(0, 90)), basket))
    seed_purchases(runtime, tenant.workspace_id, orders)
    bought: dict[int, set[str]] = defaultdict(set)
    window: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for order in orders:
        bought[order.profile_id].update(order.product_ids)
        for p in order.product_ids:
            total[p] += 1
            window[p] += order.at >= NOW - timedelta(days=30)
    expected = _oracle(items, bought, window, total, ids, 4)
    with runtime.read_sessions() as db:
        model = service.build_model(db, workspace_id=tenant.workspace_id, now=NOW)
        found = service.recommendations_for(
            db, workspace_id=tenant.workspace_id, profile_ids=ids, limit=4, now=NOW, model=model
        )
    assert len(found) == 1500
    assert {pid: _picks(v) for pid, v in found.items()} == expected
    assert sum(1 for v in found.values() if v and v[0]["reason"] == "bought_together") > 1000


def test_the_model_cache_rebuilds_when_products_purchases_or_age_change(
    runtime: Runtime, tenant: Tenant
) -> None:
    ids = _seed_shop(runtime, tenant)
    cache = service.ModelCache(max_age=timedelta(minutes=5))
    ws = tenant.workspace_id
    with runtime.read_sessions() as db:
        first = cache.get(db, workspace_id=ws, now=NOW)
        assert cache.get(db, workspace_id=ws, now=NOW + timedelta(minutes=4)) is first
        assert cache.get(db, workspace_id=ws, now=NOW + timedelta(minutes=5)) is not first
    with runtime.read_sessions() as db:
        second = cache.get(db, workspace_id=ws, now=NOW)
    with runtime.sessions() as db:
        service.upsert_product(db, workspace_id=ws, body={"id": "C", "name": "Cup", "stock": 0}, now=NOW)
        db.commit()
    with runtime.read_sessions() as db:
        third = cache.get(db, workspace_id=ws, now=NOW)
        assert third is not second and not third.available[third.index["C"]]
        found = service.recommendations_for_profile(
            db, workspace_id=ws, profile_id=ids[4], limit=3, now=NOW, cache=cache
        )
        assert [p["product_id"] for p in found] == ["B", "D", "E"]
    seed_purchases(runtime, ws, [Purchase(ids[7], days_ago(0.5), ("H",))])
    with runtime.read_sessions() as db:
        fourth = cache.get(db, workspace_id=ws, now=NOW)
        assert fourth is not third and ids[7] in fourth.bought
        assert cache.get(db, workspace_id=ws, now=NOW) is fourth
