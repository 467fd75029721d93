"""Loyalty: a 0-100 score blending tenure, purchase frequency, spend (and loyalty points) and its level.

Each component is the input divided by its target and capped at 1 (so a customer at or beyond the target
gets the full component); the score is the weighted mean of the components, times 100, rounded half up to a
whole number::

    score = round_half_up(100 · Σ wᵢ · min(1, max(0, valueᵢ / targetᵢ)) / Σ wᵢ)

Points take part only when given (their weight is ignored otherwise). Levels: bronze below 40, silver from
40, gold from 65, platinum from 85. ``targets_from_workspace`` derives targets from a workspace's own
customers (their 90th percentiles) when no fixed targets are configured.

Example::

    result = score_loyalty(tenure_days, orders, spend)
    result.level_names()   # array(['gold', 'bronze', ...])
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


class LoyaltyLevel(StrEnum):
    """Loyalty levels, lowest first; the order fixes the integer code stored for each profile."""

    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


LEVELS: tuple[LoyaltyLevel, ...] = tuple(LoyaltyLevel)


@dataclass(frozen=True, slots=True)
class LoyaltyWeights:
    """Relative weights of the components (they need not sum to 1)."""

    tenure: float = 0.25
    frequency: float = 0.4
    value: float = 0.35
    points: float = 0.0


@dataclass(frozen=True, slots=True)
class LoyaltyTargets:
    """The input at which each component is full: days as a customer, orders, spend, points."""

    tenure_days: float = 730.0
    orders: float = 12.0
    spend: float = 1000.0
    points: float = 1000.0


@dataclass(frozen=True, slots=True)
class LoyaltyThresholds:
    """The lowest score of silver, gold and platinum."""

    silver: int = 40
    gold: int = 65
    platinum: int = 85


@dataclass(frozen=True, slots=True)
class LoyaltyScores:
    """The score (0-100) and level code (index into ``LEVELS``) of each profile."""

    score: NDArray[np.int16]
    level: NDArray[np.int8]

    def level_names(self) -> NDArray[np.str_]:
        """Return the level name of each profile."""
        return np.asarray([lv.value for lv in LEVELS])[self.level]


def _component(values: ArrayLike, target: float, size: int) -> FloatArray:
    """Return min(1, max(0, value / target)), with NaN (unknown) counting as 0."""
    if not target > 0:
        raise ValueError("loyalty targets must be positive")
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (size,):
        raise ValueError("every loyalty input must be one-dimensional and of equal length")
    return np.clip(np.nan_to_num(v / target, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def score_loyalty(
    tenure_days: ArrayLike,
    orders: ArrayLike,
    spend: ArrayLike,
    points: ArrayLike | None = None,
    *,
    weights: LoyaltyWeights | None = None,
    targets: LoyaltyTargets | None = None,
    thresholds: LoyaltyThresholds | None = None,
) -> LoyaltyScores:
    """Return each profile's loyalty score (0-100) and level."""
    w = weights or LoyaltyWeights()
    t = targets or LoyaltyTargets()
    th = thresholds or LoyaltyThresholds()
    if not 0 < th.silver <= th.gold <= th.platinum <= 100:
        raise ValueError("thresholds must satisfy 0 < silver <= gold <= platinum <= 100")
    size = np.asarray(tenure_days).size
    parts = [
        (w.tenure, _component(tenure_days, t.tenure_days, size)),
        (w.frequency, _component(orders, t.orders, size)),
        (w.value, _component(spend, t.spend, size)),
    ]
    if points is not None:
        parts.append((w.points, _component(points, t.points, size)))
    if any(weight < 0 for weight, _ in parts):
        raise ValueError("loyalty weights must not be negative")
    total_weight = sum(weight for weight, _ in parts)
    if total_weight <= 0:
        raise ValueError("at least one loyalty weight must be positive")
    blended = sum((weight * part for weight, part in parts), np.zeros(size)) / total_weight
    # Half up, with a nudge so 0.645 stored as 0.64499999… still rounds to 65.
    score = np.floor(blended * 100.0 + 0.5 + 1e-9).astype(np.int16)
    level = np.searchsorted(np.asarray([th.silver, th.gold, th.platinum]), score, side="right").astype(
        np.int8
    )
    return LoyaltyScores(score=score, level=level)


def targets_from_workspace(
    tenure_days: ArrayLike,
    orders: ArrayLike,
    spend: ArrayLike,
    points: ArrayLike | None = None,
    *,
    quantile: float = 0.9,
) -> LoyaltyTargets:
    """Return targets at the given quantile of the workspace's customers (ignoring NaN and zeros)."""
    if not 0 < quantile <= 1:
        raise ValueError("quantile must lie in (0, 1]")
    defaults = LoyaltyTargets()

    def at_quantile(values: ArrayLike | None, fallback: float) -> float:
        if values is None:
            return fallback
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v) & (v > 0)]
        return float(np.quantile(v, quantile)) if v.size else fallback

    return LoyaltyTargets(
        tenure_days=at_quantile(tenure_days, defaults.tenure_days),
        orders=at_quantile(orders, defaults.orders),
        spend=at_quantile(spend, defaults.spend),
        points=at_quantile(points, defaults.points),
    )
