"""A small hand-built shop whose recommendations are worked out by hand in the tests.

Customers (customer-level co-occurrence; cosine = n(a∧b) / sqrt(n(a)·n(b))):
  c1 {A,B} · c2 {A,B,C} · c3 {A} long ago, {C} · c4 {B,D} · c5 {A,G} · c6 {E}, {E,F} · c7 {F} long ago
n: A4 B3 C2 D1 G1 E1 F2 — sim: AB .577, AC .707, AG .5, BC .408, BD .577, EF .707
Orders in the last 30 days: A3 B3 C2 E2 D1 F1 G1 → popular: A, B, C, E, F, D, G (G is out of stock).
Z is bought but not in the catalogue; H is in the catalogue and never sold.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rapport.catalog.recommend import Item, Purchase

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

ITEMS: tuple[Item, ...] = (
    Item("A", "Apron", "Kitchen", 10.0, "GBP", "https://shop.test/a", "https://shop.test/a.jpg", 5),
    Item("B", "Bowl", "Kitchen", 12.5, "GBP", "https://shop.test/b", "", None),
    Item("C", "Cup", "Kitchen", 4.0, "GBP", "", "", 3),
    Item("D", "Dish", "Kitchen", 20.0, "GBP", "", "", 2),
    Item("E", "Espadrilles", "Shoes", 35.0, "EUR", "", "", 10),
    Item("F", "Flip-flops", "Shoes", 9.0, "GBP", "", "", 1),
    Item("G", "Grater", "Kitchen", 7.0, "GBP", "", "", 0),
    Item("H", "Hiking boots", "Shoes", 120.0, "GBP", "", "", 4),
)


def days_ago(n: float) -> datetime:
    """Return the moment ``n`` days before NOW."""
    return NOW - timedelta(days=n)


#: (customer number, days ago, product ids) of every order.
ORDERS: tuple[tuple[int, float, tuple[str, ...]], ...] = (
    (1, 5, ("A", "B", "Z")),
    (2, 5, ("A", "B", "C")),
    (3, 100, ("A",)),
    (3, 2, ("C",)),
    (4, 3, ("B", "D")),
    (5, 1, ("A", "G")),
    (6, 10, ("E",)),
    (6, 4, ("E", "F")),
    (7, 200, ("F",)),
)


def purchases(profile_of: dict[int, int] | None = None) -> list[Purchase]:
    """Return the orders as purchases, customer numbers mapped to profile ids (default: the same)."""
    mapping = profile_of or {}
    return [Purchase(mapping.get(c, c), days_ago(d), ids) for c, d, ids in ORDERS]
