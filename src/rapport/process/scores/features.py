"""Propensity features as of a day, from per-(profile, day) arrays: vectorised, no session, no I/O.

Everything is counted in whole UTC days (``epoch_day``: days since 1970-01-01). As of day ``D`` a profile
is described by what happened on the days before ``D`` (``D`` itself excluded, so a reference date never
sees a partial day), and labelled by whether the target event happened on a day in ``[D, D + N)``.

Example::

    rows = FeatureRows(ids, first_day, purchases, targets)   # arrays sorted by profile id
    active, matrix = rows.as_of(day, events_30d)   # every profile; active: seen before day
    labels = rows.labels(day, horizon=30)[active]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FEATURES: tuple[str, ...] = (
    "orders",
    "spend",
    "days_since_purchase",
    "tenure_days",
    "events_30d",
    "target_events",
    "days_since_target",
)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DailyEvents:
    """Events by (profile, day), sorted by profile then day: how many, and a summed value."""

    profile_ids: IntArray
    days: IntArray
    counts: IntArray
    values: FloatArray


def positions(ids: IntArray, profile_ids: IntArray) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Return where each of ``profile_ids`` sits in the sorted ``ids`` and whether it is there at all."""
    if ids.size == 0:
        return np.zeros(profile_ids.size, dtype=np.intp), np.zeros(profile_ids.size, dtype=bool)
    pos = np.searchsorted(ids, profile_ids)
    clipped = np.minimum(pos, ids.size - 1)
    return clipped, ids[clipped] == profile_ids


def totals_before(
    ids: IntArray, daily: DailyEvents, day: int, *, start: int | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per profile of ``ids``: events, summed value and the last day over days in ``[start, day)``.

    The last day is NaN for a profile without such events.
    """
    pos, known = positions(ids, daily.profile_ids)
    keep = known & (daily.days < day)
    if start is not None:
        keep &= daily.days >= start
    where = pos[keep]
    counts = np.bincount(where, weights=daily.counts[keep].astype(np.float64), minlength=ids.size)
    values = np.bincount(where, weights=daily.values[keep], minlength=ids.size).astype(np.float64)
    last = np.full(ids.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, where, daily.days[keep])
    last_day = np.where(last == np.iinfo(np.int64).min, np.nan, last.astype(np.float64))
    return counts.astype(np.float64), values, last_day.astype(np.float64)


@dataclass(frozen=True)
class FeatureRows:
    """The inputs of the propensity features for one workspace (``ids`` sorted, one row each)."""

    ids: IntArray
    first_day: IntArray
    purchases: DailyEvents
    targets: DailyEvents

    def as_of(self, day: int, events_30d: IntArray) -> tuple[NDArray[np.bool_], FloatArray]:
        """Return which profiles were active before ``day`` and the feature matrix of every profile.

        ``events_30d`` is each profile's count of events on days in ``[day - 30, day)``.
        """
        active = self.first_day < day
        orders, spend, last_purchase = totals_before(self.ids, self.purchases, day)
        target_events, _, last_target = totals_before(self.ids, self.targets, day)
        matrix = np.column_stack(
            [
                orders,
                spend,
                day - last_purchase,
                (day - self.first_day).astype(np.float64),
                events_30d.astype(np.float64),
                target_events,
                day - last_target,
            ]
        )
        return active, matrix

    def labels(self, day: int, *, horizon: int) -> NDArray[np.int8]:
        """Return 1 for each profile with a target event on a day in ``[day, day + horizon)``, else 0."""
        counts, _, _ = totals_before(self.ids, self.targets, day + horizon, start=day)
        return (counts > 0).astype(np.int8)
