"""Product recommendations as pure functions over purchases and the catalogue (no session, no I/O).

The model (:func:`build_model`) is learnt from every purchase of the workspace:

* **bought together** — item-to-item cosine similarity over customers: ``sim(a, b) = n(a∧b) /
  sqrt(n(a)·n(b))`` where ``n`` counts customers who bought the product(s); a customer who bought both in one
  order or in different orders counts once. Each product keeps its ``neighbours`` most similar products.
  A person's candidates score ``Σ sim(i, j)`` over what they bought.
* **popular** — products ranked by the number of orders holding them in the last ``popular_days`` days,
  ties by orders of all time, then by product id; overall and per category (matched without case).

:func:`recommend` fills each person's list in that order — bought together, popular in the favourite
category, popular overall — never repeating a product, never offering one the person already bought or
one with ``stock == 0`` (an unknown stock counts as available). Example::

    model = build_model(purchases, items, now=now)
    picks = recommend(model, [42], favourites={42: "Footwear"}, limit=3)
    [(model.items[i].name, reason) for i, reason in picks[42]]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # imported where used: scipy.sparse weighs 23 MB in every process that loads the app
    from scipy import sparse

BOUGHT_TOGETHER = "bought_together"
POPULAR_IN_CATEGORY = "popular_in_category"
POPULAR = "popular"
DEFAULT_POPULAR_DAYS = 30
DEFAULT_NEIGHBOURS = 50
#: Scores are rounded before ranking so that equal sums of floats tie exactly (then popularity decides).
_DECIMALS = 9

IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Item:
    """One product of the catalogue as recommendations show it."""

    product_id: str
    name: str
    category: str = ""
    price: float | None = None
    currency: str = "GBP"
    url: str = ""
    image_url: str = ""
    stock: int | None = None

    @property
    def available(self) -> bool:
        """Tell whether the product may be offered (unknown stock counts as in stock)."""
        return self.stock is None or self.stock > 0

    def to_dict(self, reason: str) -> dict[str, Any]:
        """Return the JSON-able dict templates loop over (``p.name``, ``p.price | money``, …); ``id`` and
        ``image`` repeat ``product_id`` and ``image_url`` under the names the template docs use."""
        return {
            "product_id": self.product_id,
            "id": self.product_id,
            "name": self.name,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "url": self.url,
            "image_url": self.image_url,
            "image": self.image_url,
            "stock": self.stock,
            "reason": reason,
        }


@dataclass(frozen=True, slots=True)
class Purchase:
    """One purchase event: who, when, and the product ids it held."""

    profile_id: int
    at: datetime
    product_ids: tuple[str, ...]


def _item_id(value: Mapping[str, Any]) -> str | None:
    for key in ("product_id", "sku", "id"):
        raw = value.get(key)
        if isinstance(raw, str) and raw.strip():
            return raw.strip()
        if isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)
    return None


def purchased_product_ids(properties: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the product ids of a purchase event: ``products[*].product_id`` (or ``sku``/``id``), else
    the event's own ``product_id``/``sku``; each id once, in order."""
    found: list[str] = []
    products = properties.get("products")
    if isinstance(products, list):
        for entry in products:
            if isinstance(entry, Mapping) and (pid := _item_id(entry)) is not None:
                found.append(pid)
    if not found:
        top = {k: properties.get(k) for k in ("product_id", "sku")}
        if (pid := _item_id(top)) is not None:
            found.append(pid)
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Model:
    """What recommendations are computed from; build it once and reuse it for many people."""

    items: tuple[Item, ...]
    similar: sparse.csr_matrix
    bought: dict[int, IntArray]
    popular: IntArray
    popular_in: dict[str, IntArray]
    popularity_rank: IntArray
    available: NDArray[np.bool_]
    built_at: datetime
    index: dict[str, int] = field(default_factory=dict)

    def favourite_category(self, profile_id: int) -> str | None:
        """Return the category the person bought most distinct products in (ties: alphabetical)."""
        bought = self.bought.get(profile_id)
        if bought is None or not len(bought):
            return None
        counts = Counter(self.items[i].category for i in bought if self.items[i].category)
        if not counts:
            return None
        return min(counts, key=lambda c: (-counts[c], c))


def _top_neighbours(sim: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep each row's ``k`` largest entries (ties: lower column first)."""
    from scipy import sparse

    sim.sort_indices()
    indptr, indices, data = sim.indptr, sim.indices, sim.data
    keep = np.ones(len(data), dtype=bool)
    for row in range(sim.shape[0]):
        lo, hi = indptr[row], indptr[row + 1]
        if hi - lo > k:
            order = np.lexsort((indices[lo:hi], -data[lo:hi]))
            drop = order[k:]
            keep[lo + drop] = False
    rows = np.repeat(np.arange(sim.shape[0]), np.diff(indptr))
    return sparse.csr_matrix((data[keep], (rows[keep], indices[keep])), shape=sim.shape)


def _similarity(pairs: Sequence[tuple[int, int]], n_people: int, n_items: int, k: int) -> sparse.csr_matrix:
    from scipy import sparse

    if not pairs:
        return sparse.csr_matrix((n_items, n_items), dtype=np.float64)
    people = np.fromiter((p for p, _ in pairs), dtype=np.int64, count=len(pairs))
    products = np.fromiter((i for _, i in pairs), dtype=np.int64, count=len(pairs))
    bought = sparse.csr_matrix(
        (np.ones(len(pairs), dtype=np.float64), (people, products)), shape=(n_people, n_items)
    )
    both = (bought.T @ bought).tocsr()
    counts = both.diagonal()
    both.setdiag(0)
    both.eliminate_zeros()
    coo = both.tocoo()
    denom = np.sqrt(counts[coo.row] * counts[coo.col])
    cosine = sparse.csr_matrix((coo.data / denom, (coo.row, coo.col)), shape=both.shape)
    return _top_neighbours(cosine, k)


def _ranked(candidates: Iterable[int], window: Counter[int], total: Counter[int]) -> IntArray:
    order = sorted(candidates, key=lambda i: (-window[i], -total[i], i))
    return np.asarray(order, dtype=np.int64)


def build_model(
    purchases: Iterable[Purchase],
    items: Sequence[Item],
    *,
    now: datetime,
    popular_days: int = DEFAULT_POPULAR_DAYS,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> Model:
    """Learn similarities, each person's purchases and popularity from purchases over ``items``.

    Product ids a purchase holds that are not in ``items`` are ignored (they cannot be offered).
    """
    ordered = tuple(sorted(items, key=lambda it: it.product_id))
    index = {it.product_id: i for i, it in enumerate(ordered)}
    since = now - timedelta(days=popular_days)
    rows: dict[int, int] = {}
    pairs: set[tuple[int, int]] = set()
    per_person: dict[int, set[int]] = defaultdict(set)
    window: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for purchase in purchases:
        known = [index[pid] for pid in purchase.product_ids if pid in index]
        if not known:
            continue
        row = rows.setdefault(purchase.profile_id, len(rows))
        recent = since <= purchase.at <= now
        for i in set(known):
            pairs.add((row, i))
            per_person[purchase.profile_id].add(i)
            total[i] += 1
            if recent:
                window[i] += 1
    similar = _similarity(sorted(pairs), len(rows), len(ordered), neighbours)
    popular = _ranked(total, window, total)
    by_category: dict[str, list[int]] = defaultdict(list)
    for i in popular.tolist():
        by_category[ordered[i].category.casefold()].append(i)
    rank = np.full(len(ordered), len(ordered), dtype=np.int64)
    rank[popular] = np.arange(len(popular), dtype=np.int64)
    return Model(
        items=ordered,
        similar=similar,
        bought={pid: np.asarray(sorted(s), dtype=np.int64) for pid, s in per_person.items()},
        popular=popular,
        popular_in={c: np.asarray(v, dtype=np.int64) for c, v in by_category.items()},
        popularity_rank=rank,
        available=np.fromiter((it.available for it in ordered), dtype=bool, count=len(ordered)),
        built_at=now,
        index=index,
    )


def _fill(
    picks: list[tuple[int, str]], taken: set[int], ranked: IntArray, reason: str, limit: int, model: Model
) -> None:
    if len(picks) >= limit:
        return
    for i in ranked.tolist():
        if i in taken or not model.available[i]:
            continue
        picks.append((i, reason))
        taken.add(i)
        if len(picks) >= limit:
            return


def recommend(
    model: Model,
    profile_ids: Sequence[int],
    *,
    favourites: Mapping[int, str | None] | None = None,
    limit: int = 3,
) -> dict[int, list[tuple[int, str]]]:
    """Return up to ``limit`` (item index, reason) per person, best first (see the module docstring).

    ``favourites`` gives each person's favourite category (a computed trait); when it is missing the
    category they bought most products in is used.
    """
    from scipy import sparse

    favourites = favourites or {}
    targets = list(dict.fromkeys(profile_ids))
    out: dict[int, list[tuple[int, str]]] = {}
    empty = np.zeros(0, dtype=np.int64)
    bought_rows = [model.bought.get(pid, empty) for pid in targets]
    scores: sparse.csr_matrix | None = None
    if targets and len(model.items) and model.similar.nnz:
        lengths = np.fromiter((len(b) for b in bought_rows), dtype=np.int64, count=len(targets))
        cols = np.concatenate(bought_rows) if lengths.sum() else empty
        rows = np.repeat(np.arange(len(targets)), lengths)
        owned = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(targets), len(model.items)))
        scores = (owned @ model.similar).tocsr()
        # Drop what each person bought and what is out of stock, for everyone at once.
        scores = scores - scores.multiply(owned)
        scores = (scores @ sparse.diags(model.available.astype(np.float64))).tocsr()
        scores.data = np.round(scores.data, _DECIMALS)
        scores.eliminate_zeros()
    for t, pid in enumerate(targets):
        taken = set(bought_rows[t].tolist())
        picks: list[tuple[int, str]] = []
        if scores is not None and limit > 0:
            lo, hi = scores.indptr[t], scores.indptr[t + 1]
            if hi > lo:
                cols = scores.indices[lo:hi]
                vals = scores.data[lo:hi]
                cols = cols[vals > 0]
                vals = vals[vals > 0]
                order = np.lexsort((cols, model.popularity_rank[cols], -vals))
                _fill(picks, taken, cols[order[:limit]], BOUGHT_TOGETHER, limit, model)
        if len(picks) < limit:
            favourite = favourites.get(pid) or model.favourite_category(pid)
            if favourite:
                ranked = model.popular_in.get(favourite.casefold(), empty)
                _fill(picks, taken, ranked, POPULAR_IN_CATEGORY, limit, model)
            _fill(picks, taken, model.popular, POPULAR, limit, model)
        out[pid] = picks
    return out
