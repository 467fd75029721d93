"""Turn raw purchase transactions into the per-customer summary the CLV models take.

For each customer, over purchases up to the end of observation (purchases on one calendar day count as one
purchase whose value is their sum):

- ``x``: repeat purchases (purchase days after the first one);
- ``t_x``: time from the first purchase day to the last;
- ``T``: time from the first purchase day to the end of observation;
- ``mean_value``: mean value of the repeat purchases (0 when x = 0), the Gamma-Gamma input;
- ``total_value`` and ``purchase_days`` (x + 1), handy for RFM.

Time is measured in whole days and expressed in the chosen unit (``"days"``, ``"weeks"`` or a number of days
per unit). Timestamps are truncated to their calendar day as given: pass UTC, or local wall-clock times if
"same day" should follow the customer's timezone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
TimeUnit = Literal["days", "weeks"] | float

_DAYS_PER_UNIT: dict[str, float] = {"days": 1.0, "weeks": 7.0}


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """One row per customer (sorted by id): the BG/NBD and Gamma-Gamma inputs plus totals."""

    customer_ids: NDArray[Any]
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    mean_value: FloatArray
    total_value: FloatArray
    purchase_days: NDArray[np.int64]
    unit_days: float


def days_per_unit(unit: TimeUnit) -> float:
    """Return how many days one time unit lasts (``"days"`` → 1, ``"weeks"`` → 7, or the number given)."""
    if isinstance(unit, str):
        if unit not in _DAYS_PER_UNIT:
            raise ValueError(f"unknown time unit {unit!r}; use 'days', 'weeks' or a number of days")
        return _DAYS_PER_UNIT[unit]
    if not unit > 0:
        raise ValueError("a time unit must last a positive number of days")
    return float(unit)


def to_days(values: ArrayLike | Sequence[datetime | date]) -> NDArray[np.datetime64]:
    """Return calendar days (``datetime64[D]``); aware datetimes are converted to UTC first."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[D]")
    items = list(values)  # type: ignore[arg-type]
    converted = [
        v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo is not None else v
        for v in items
    ]
    return np.asarray(converted, dtype="datetime64[D]")


def summarize_transactions(
    customer_ids: ArrayLike,
    timestamps: ArrayLike | Sequence[datetime | date],
    values: ArrayLike,
    *,
    observation_end: datetime | date | np.datetime64,
    unit: TimeUnit = "days",
) -> CustomerSummary:
    """Summarise (customer, timestamp, value) transactions up to ``observation_end`` (inclusive, by day)."""
    ids = np.asarray(customer_ids)
    days = to_days(timestamps)
    amounts = np.asarray(values, dtype=np.float64)
    if not (ids.ndim == days.ndim == amounts.ndim == 1) or not (ids.size == days.size == amounts.size):
        raise ValueError("customer_ids, timestamps and values must be one-dimensional and of equal length")
    if np.isnat(days).any() or not np.isfinite(amounts).all():
        raise ValueError("timestamps and values must be set and finite")
    end = to_days(
        np.asarray([observation_end]) if isinstance(observation_end, np.datetime64) else [observation_end]
    )[0]
    unit_days = days_per_unit(unit)

    keep = days <= end
    ids, days, amounts = ids[keep], days[keep], amounts[keep]
    # One row per (customer, day) with the day's summed value.
    order = np.lexsort((days, ids))
    ids, days, amounts = ids[order], days[order], amounts[order]
    new_day = np.ones(ids.size, dtype=bool)
    new_day[1:] = (ids[1:] != ids[:-1]) | (days[1:] != days[:-1])
    day_start = np.flatnonzero(new_day)
    day_ids = ids[day_start]
    day_dates = days[day_start]
    day_values = np.add.reduceat(amounts, day_start) if amounts.size else amounts

    new_customer = np.ones(day_ids.size, dtype=bool)
    new_customer[1:] = day_ids[1:] != day_ids[:-1]
    first_row = np.flatnonzero(new_customer)
    is_last = np.ones(day_ids.size, dtype=bool)
    is_last[:-1] = new_customer[1:]
    last_row = np.flatnonzero(is_last)
    purchase_days = np.diff(np.append(first_row, day_ids.size)).astype(np.int64)

    first_day = day_dates[first_row]
    t_x_days = (day_dates[last_row] - first_day).astype(np.float64)
    T_days = (end - first_day).astype(np.float64)
    total = np.add.reduceat(day_values, first_row) if day_values.size else day_values
    repeat_values = day_values.copy()
    repeat_values[first_row] = 0.0
    repeat_total = np.add.reduceat(repeat_values, first_row) if day_values.size else day_values
    x = (purchase_days - 1).astype(np.float64)
    mean_value = np.divide(repeat_total, x, out=np.zeros_like(total), where=x > 0)
    return CustomerSummary(
        customer_ids=day_ids[first_row],
        x=x,
        t_x=t_x_days / unit_days,
        T=T_days / unit_days,
        mean_value=mean_value,
        total_value=total,
        purchase_days=purchase_days,
        unit_days=unit_days,
    )
