"""The nearest store of a recipient (content/stores.py) and products named by id (catalog/service.py)."""

from __future__ import annotations

import pytest

from rapport.catalog.service import referenced_product_ids
from rapport.content.stores import nearest_store, placed_stores, position

SETTINGS = {
    "stores": [
        {"id": "a", "name": "Leeds Briggate", "latitude": 53.7980, "longitude": -1.5430, "phone": "0113 000"},
        {"name": "York Coney Street", "lat": 53.9583, "lon": -1.0841, "opening_hours": {"mon": "9-17"}},
        {"name": "Nowhere"},  # no position: never chosen
        {"name": "Bad", "latitude": "53", "longitude": -1.5},  # a string is not a position
        {"latitude": 53.79, "longitude": -1.54},  # no name
        "not a store",
    ]
}


def test_only_named_stores_with_a_valid_position_are_placed() -> None:
    assert [store["name"] for _where, store in placed_stores(SETTINGS)] == [
        "Leeds Briggate",
        "York Coney Street",
    ]
    assert placed_stores(None) == [] and placed_stores({"stores": "x"}) == []


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"latitude": 53.8008, "longitude": -1.5491}, ("Leeds Briggate", 0.5)),
        ({"lat": 53.95, "lon": -1.10}, ("York Coney Street", 1.4)),
        ({"latitude": 51.5, "longitude": -0.12}, ("Leeds Briggate", 272.9)),  # far, but still the nearest
    ],
)
def test_the_nearest_store_with_its_distance(traits: dict[str, float], expected: tuple[str, float]) -> None:
    found = nearest_store(placed_stores(SETTINGS), traits)
    assert found is not None
    assert (found["name"], found["distance_km"]) == expected
    assert isinstance(found["latitude"], float) and isinstance(found["longitude"], float)


def test_store_fields_are_copied_and_aliases_normalised() -> None:
    leeds = nearest_store(placed_stores(SETTINGS), {"latitude": 53.8, "longitude": -1.55})
    assert leeds == {"id": "a", "name": "Leeds Briggate", "phone": "0113 000", "latitude": 53.798,
                     "longitude": -1.543, "distance_km": 0.5}  # fmt: skip
    york = nearest_store(placed_stores(SETTINGS), {"latitude": 53.96, "longitude": -1.08})
    assert york is not None and york["opening_hours"] == {"mon": "9-17"} and "lat" not in york


@pytest.mark.parametrize(
    "traits",
    [{}, {"latitude": 53.8}, {"latitude": "53.8", "longitude": "-1.5"}, {"latitude": 91, "longitude": 0},
     {"latitude": True, "longitude": 0}, {"latitude": float("nan"), "longitude": 0}],
)  # fmt: skip
def test_no_position_no_store(traits: dict[str, object]) -> None:
    assert position(traits) is None
    assert nearest_store(placed_stores(SETTINGS), traits) is None


def test_no_stores_no_store() -> None:
    assert nearest_store([], {"latitude": 53.8, "longitude": -1.55}) is None


def test_products_named_by_literal_id() -> None:
    sources = ["{{ catalog[\"sku-1\"].name }} {{ catalog[ 'sku 2' ].price }}", "{{ catalog[p.id] }} catalog"]
    assert referenced_product_ids(sources) == {"sku-1", "sku 2"}
    assert referenced_product_ids(["{{ recommendations }}"]) == set()
