"""Customer lifetime value, churn danger and value tiers from fitted BG/NBD and Gamma-Gamma models.

CLV over ``months`` months is the discounted expected spend, month by month (the approach of Fader, Hardie &
Lee's iso-value paper and of ``lifetimes.customer_lifetime_value``)::

    CLV = Σ_{i=1..months} margin · E[value] · (E[Y(i·m)] − E[Y((i−1)·m)]) / (1 + d)^i

where E[Y(t)] is BG/NBD's expected number of purchases in (T, T + t], m is one month in the model's time
unit (365.25/12 days), d the monthly discount rate and E[value] Gamma-Gamma's conditional expected value.

Example::

    value = predict_clv(bgnbd, gg, x, t_x, T, mean_value, unit_days=7.0)
    tiers = value_tiers(value)
    bands = churn_bands(churn_danger(bgnbd, x, t_x, T))
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rapport.process.scores import bgnbd
from rapport.process.scores.gamma_gamma import GammaGammaParams, expected_average_value

FloatArray = NDArray[np.float64]

DAYS_PER_MONTH = 365.25 / 12


class ChurnBand(StrEnum):
    """How likely a customer is to have stopped buying (churn danger = 1 − P(alive))."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ValueTier(StrEnum):
    """Where a customer's predicted CLV ranks within the workspace."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# Danger thresholds: [0, 0.25) low, [0.25, 0.5) medium, [0.5, 0.75) high, [0.75, 1] critical.
CHURN_THRESHOLDS: tuple[float, float, float] = (0.25, 0.5, 0.75)
CHURN_BANDS: tuple[ChurnBand, ...] = (ChurnBand.LOW, ChurnBand.MEDIUM, ChurnBand.HIGH, ChurnBand.CRITICAL)
# Value tiers: the top 20% of customers by CLV are high, the next 30% medium, the rest low.
VALUE_TIER_PERCENTS: tuple[int, int] = (20, 50)
VALUE_TIERS: tuple[ValueTier, ...] = (ValueTier.HIGH, ValueTier.MEDIUM, ValueTier.LOW)


def predict_clv(
    purchases: bgnbd.BgNbdParams,
    spend: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    mean_value: ArrayLike,
    *,
    unit_days: float,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
) -> FloatArray:
    """Return each customer's discounted expected value over the next ``months`` months."""
    if months < 1:
        raise ValueError("months must be at least 1")
    if monthly_discount_rate <= -1.0:
        raise ValueError("the monthly discount rate must be greater than -1")
    if unit_days <= 0:
        raise ValueError("unit_days must be positive")
    value = expected_average_value(spend, x, mean_value) * margin
    xs, txs, ts = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, t_x, T)))
    ux, utx, uT, _, inverse = bgnbd.unique_histories(xs.ravel(), txs.ravel(), ts.ravel())
    # The discounted purchase count depends on (x, t_x, T) only: compute it once per distinct history.
    month = DAYS_PER_MONTH / unit_days
    discounted = np.zeros_like(ux)
    previous = np.zeros_like(ux)
    for i in range(1, months + 1):
        cumulative = bgnbd.expected_purchases(purchases, i * month, ux, utx, uT)
        discounted += (cumulative - previous) / (1.0 + monthly_discount_rate) ** i
        previous = cumulative
    return np.asarray(value * discounted[inverse].reshape(xs.shape), dtype=np.float64)


def churn_danger(params: bgnbd.BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """Return 1 − P(alive); 0 for customers without repeat purchases (see docs/scores.md)."""
    return 1.0 - bgnbd.p_alive(params, x, t_x, T)


def churn_band_codes(danger: ArrayLike) -> NDArray[np.int8]:
    """Return the index into ``CHURN_BANDS`` of each danger value (0 low … 3 critical)."""
    values = np.asarray(danger, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("churn danger must not be NaN")
    return np.searchsorted(np.asarray(CHURN_THRESHOLDS), values, side="right").astype(np.int8)


def churn_bands(danger: ArrayLike) -> NDArray[np.str_]:
    """Return the churn band name of each danger value."""
    return np.asarray([band.value for band in CHURN_BANDS])[churn_band_codes(danger)]


def value_tier_codes(clv: ArrayLike) -> NDArray[np.int8]:
    """Return the index into ``VALUE_TIERS`` of each CLV (0 high, 1 medium, 2 low).

    A customer is high when at most 20% of customers have a CLV at least as large as theirs, medium when at
    most 50% do; ties therefore always share a tier (the lower one when they straddle a boundary), and a
    workspace where most CLVs are equal puts them all in low rather than splitting them by row order.
    """
    values = np.asarray(clv, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("clv must be one-dimensional")
    if np.isnan(values).any():
        raise ValueError("clv must not be NaN")
    n = values.size
    high, medium = VALUE_TIER_PERCENTS
    codes = np.full(n, 2, dtype=np.int8)
    # #{CLV ≥ v} ≤ k  ⇔  #{CLV < v} ≥ n − k  ⇔  v > the (n − k)-th smallest CLV (every v when k = n);
    # k is computed in integers, so 20% of 10 customers is exactly 2 and not a float just above it.
    for code, percent in ((1, medium), (0, high)):
        allowed = percent * n // 100
        if allowed >= n:
            codes[:] = code
        elif allowed > 0:
            codes[values > np.partition(values, n - allowed - 1)[n - allowed - 1]] = code
    return codes


def value_tiers(clv: ArrayLike) -> NDArray[np.str_]:
    """Return the value tier name of each CLV."""
    return np.asarray([tier.value for tier in VALUE_TIERS])[value_tier_codes(clv)]
