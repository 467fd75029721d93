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
from functools import cached_property

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


def group_daily(profile_ids: IntArray, days: IntArray, values: FloatArray) -> DailyEvents:
    """Group single events (profile, day, value; NaN value counts as 0) by (profile, day), sorted."""
    if profile_ids.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DailyEvents(empty, empty, empty, np.zeros(0))
    order = np.lexsort((days, profile_ids))
    pid, day, value = profile_ids[order], days[order], np.nan_to_num(values[order], nan=0.0)
    start = np.flatnonzero(np.r_[True, (pid[1:] != pid[:-1]) | (day[1:] != day[:-1])])
    counts = np.diff(np.r_[start, pid.size]).astype(np.int64)
    return DailyEvents(pid[start], day[start], counts, np.add.reduceat(value, start).astype(np.float64))


def positions(ids: IntArray, profile_ids: IntArray) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Return where each of ``profile_ids`` sits in the sorted ``ids`` and whether it is there at all."""
    if ids.size == 0:
        return np.zeros(profile_ids.size, dtype=np.intp), np.zeros(profile_ids.size, dtype=bool)
    pos = np.searchsorted(ids, profile_ids)
    clipped = np.minimum(pos, ids.size - 1)
    return clipped, ids[clipped] == profile_ids


def totals_before(
    ids: IntArray,
    daily: DailyEvents,
    day: int,
    *,
    start: int | None = None,
    located: tuple[NDArray[np.intp], NDArray[np.bool_]] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per profile of ``ids``: events, summed value and the last day over days in ``[start, day)``.

    The last day is NaN for a profile without such events. ``located`` is ``positions(ids,
    daily.profile_ids)`` when the caller already has it (it is the same for every day).
    """
    pos, known = located if located is not None else positions(ids, daily.profile_ids)
    keep = known & (daily.days < day)
    if start is not None:
        keep &= daily.days >= start
    where = pos[keep]
    kept_days = daily.days[keep]
    counts = np.bincount(where, weights=daily.counts[keep].astype(np.float64), minlength=ids.size)
    values = np.bincount(where, weights=daily.values[keep], minlength=ids.size).astype(np.float64)
    last_day = np.full(ids.size, np.nan)
    if where.size:
        if (np.diff(where) >= 0).all():
            # Rows come sorted by (profile, day): each profile's last kept row holds its latest day.
            ends = np.flatnonzero(np.append(where[1:] != where[:-1], True))
            last_day[where[ends]] = np.maximum.reduceat(kept_days, np.append(0, ends[:-1] + 1))
        else:
            last = np.full(ids.size, np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(last, where, kept_days)
            seen = last != np.iinfo(np.int64).min
            last_day[seen] = last[seen]
    return counts.astype(np.float64), values, last_day


@dataclass(frozen=True)
class FeatureRows:
    """The inputs of the propensity features for one workspace (``ids`` sorted, one row each)."""

    ids: IntArray
    first_day: IntArray
    purchases: DailyEvents
    targets: DailyEvents

    @cached_property
    def _purchases_at(self) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        return positions(self.ids, self.purchases.profile_ids)

    @cached_property
    def _targets_at(self) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        return positions(self.ids, self.targets.profile_ids)

    def as_of(self, day: int, events_30d: IntArray) -> tuple[NDArray[np.bool_], FloatArray]:
        """Return which profiles were active before ``day`` and the feature matrix of every profile.

        ``events_30d`` is each profile's count of events on days in ``[day - 30, day)``.
        """
        active = self.first_day < day
        orders, spend, last_purchase = totals_before(
            self.ids, self.purchases, day, located=self._purchases_at
        )
        if self.targets is self.purchases:
            target_events, last_target = orders, last_purchase
        else:
            target_events, _, last_target = totals_before(
                self.ids, self.targets, day, located=self._targets_at
            )
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
        counts, _, _ = totals_before(
            self.ids, self.targets, day + horizon, start=day, located=self._targets_at
        )
        return (counts > 0).astype(np.int8)
