"""Pure recommendations on the hand-built shop of tests/catalog/dataset.py: exact answers."""

from __future__ import annotations

import pytest

from rapport.catalog.recommend import (
    BOUGHT_TOGETHER,
    POPULAR,
    POPULAR_IN_CATEGORY,
    Item,
    Model,
    build_model,
    purchased_product_ids,
    recommend,
)
from tests.catalog.dataset import ITEMS, NOW, purchases

BT, PIC, POP = BOUGHT_TOGETHER, POPULAR_IN_CATEGORY, POPULAR


def _names(model: Model, picks: list[tuple[int, str]]) -> list[tuple[str, str]]:
    return [(model.items[i].product_id, reason) for i, reason in picks]


@pytest.fixture(scope="module")
def model() -> Model:
    return build_model(purchases(), ITEMS, now=NOW)


def test_similarity_is_customer_level_cosine(model: Model) -> None:
    sim = model.similar.toarray()
    at = model.index
    assert sim[at["A"], at["B"]] == pytest.approx(2 / 12**0.5)
    assert sim[at["A"], at["C"]] == pytest.approx(2 / 8**0.5)
    assert sim[at["A"], at["G"]] == pytest.approx(0.5)
    assert sim[at["B"], at["D"]] == pytest.approx(1 / 3**0.5)
    assert sim[at["E"], at["F"]] == pytest.approx(1 / 2**0.5)
    assert sim[at["A"], at["A"]] == 0 and sim[at["A"], at["E"]] == 0
    assert (sim == sim.T).all()


def test_popularity_counts_recent_orders_then_all_time_then_id(model: Model) -> None:
    assert [model.items[i].product_id for i in model.popular] == ["A", "B", "C", "E", "F", "D", "G"]
    kitchen = model.popular_in["kitchen"]
    assert [model.items[i].product_id for i in kitchen] == ["A", "B", "C", "D", "G"]
    assert [model.items[i].product_id for i in model.popular_in["shoes"]] == ["E", "F"]


def test_bought_together_first_then_favourite_category_then_popular(model: Model) -> None:
    picks = recommend(model, [5], limit=4)
    # c5 bought A and G: C (.707) and B (.577) go with A; G is out of stock anyway; then Kitchen: D; then E
    assert _names(model, picks[5]) == [("C", BT), ("B", BT), ("D", PIC), ("E", POP)]


def test_scores_add_up_over_everything_the_person_bought(model: Model) -> None:
    # c1 bought A and B: C = .707 + .408 beats D = .577; G (.5) is out of stock; Z is unknown
    assert _names(model, recommend(model, [1], limit=3)[1]) == [("C", BT), ("D", BT), ("E", POP)]


def test_never_what_was_bought_nor_out_of_stock(model: Model) -> None:
    picks = recommend(model, [4], limit=10)
    # c4 bought B and D: A .577, C .408; Kitchen has nothing left (G: stock 0); then popular E, F
    assert _names(model, picks[4]) == [("A", BT), ("C", BT), ("E", POP), ("F", POP)]
    for pid in range(1, 8):
        offered = {model.items[i].product_id for i, _ in recommend(model, [pid], limit=20)[pid]}
        bought = {model.items[i].product_id for i in model.bought[pid]}
        assert not offered & bought
        assert "G" not in offered and "Z" not in offered
        assert "H" not in offered  # never sold: no signal to recommend it


def test_favourite_category_from_the_trait_wins_and_matches_without_case(model: Model) -> None:
    # c7 bought only F (Shoes): E goes with F; Shoes has nothing else sold
    assert _names(model, recommend(model, [7], limit=3)[7]) == [("E", BT), ("A", POP), ("B", POP)]
    told = recommend(model, [7], favourites={7: "KITCHEN"}, limit=3)
    assert _names(model, told[7]) == [("E", BT), ("A", PIC), ("B", PIC)]


def test_someone_without_purchases_gets_popular_products(model: Model) -> None:
    picks = recommend(model, [999, 6], limit=3)
    assert _names(model, picks[999]) == [("A", POP), ("B", POP), ("C", POP)]
    # c6 bought E and F: each only goes with the other; Shoes has nothing else sold
    assert _names(model, picks[6]) == [("A", POP), ("B", POP), ("C", POP)]


def test_neighbours_are_pruned_to_the_most_similar() -> None:
    small = build_model(purchases(), ITEMS, now=NOW, neighbours=1)
    at = small.index
    row = small.similar.toarray()[at["A"]]
    assert [small.items[i].product_id for i in row.nonzero()[0]] == ["C"]
    assert _names(small, recommend(small, [5], limit=3)[5]) == [("C", BT), ("B", PIC), ("D", PIC)]


def test_limits_duplicates_and_empty_models() -> None:
    model = build_model(purchases(), ITEMS, now=NOW)
    assert recommend(model, [5], limit=0) == {5: []}
    assert list(recommend(model, [5, 5, 1], limit=1)) == [5, 1]
    empty = build_model([], ITEMS, now=NOW)
    assert recommend(empty, [1, 2], limit=3) == {1: [], 2: []}
    nothing = build_model(purchases(), [], now=NOW)
    assert recommend(nothing, [1], limit=3) == {1: []}


def test_the_dict_shape_templates_use() -> None:
    item = Item("A", "Apron", "Kitchen", 10.0, "GBP", "https://x.test/a", "", 5)
    assert item.to_dict(BT) == {
        "product_id": "A",
        "id": "A",
        "name": "Apron",
        "category": "Kitchen",
        "price": 10.0,
        "currency": "GBP",
        "url": "https://x.test/a",
        "image_url": "",
        "image": "",
        "stock": 5,
        "reason": BT,
    }


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (
            {"products": [{"sku": "A"}, {"product_id": "B", "sku": "x"}, {"id": 7}, {"sku": "A"}]},
            ("A", "B", "7"),
        ),
        ({"product_id": "Q", "products": []}, ("Q",)),
        ({"sku": " R "}, ("R",)),
        ({"products": "junk", "total": 3}, ()),
        ({"products": [None, {"name": "no id"}, {"sku": True}]}, ()),
    ],
)
def test_product_ids_of_a_purchase_event(properties: dict[str, object], expected: tuple[str, ...]) -> None:
    assert purchased_product_ids(properties) == expected
