"""Loyalty: exact scores and levels on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from rapport.process.scores import loyalty
from rapport.process.scores.loyalty import LoyaltyTargets, LoyaltyThresholds, LoyaltyWeights

TARGETS = LoyaltyTargets(tenure_days=100.0, orders=10.0, spend=1000.0, points=500.0)


def test_default_blend_on_hand_made_customers() -> None:
    tenure = [0.0, 50.0, 100.0, 400.0, 80.0, 30.0]
    orders = [0, 5, 10, 25, 8, 2]
    spend = [0.0, 500.0, 1000.0, 9000.0, 700.0, 100.0]
    result = loyalty.score_loyalty(tenure, orders, spend, targets=TARGETS)
    # 100 · (0.25·tenure + 0.4·orders + 0.35·spend), each capped at its target:
    # 0; 50; 100; 100 (capped); 25·0.8 + 40·0.8 + 35·0.7 = 76.5 → 77; 7.5 + 8 + 3.5 = 19.
    assert result.score.tolist() == [0, 50, 100, 100, 77, 19]
    assert result.level_names().tolist() == ["bronze", "silver", "platinum", "platinum", "gold", "bronze"]
    assert result.level.tolist() == [0, 1, 3, 3, 2, 0]


def test_points_join_the_blend_only_when_given() -> None:
    weights = LoyaltyWeights(tenure=1.0, frequency=1.0, value=1.0, points=1.0)
    without = loyalty.score_loyalty([100.0], [0], [0.0], weights=weights, targets=TARGETS)
    with_points = loyalty.score_loyalty([100.0], [0], [0.0], [250.0], weights=weights, targets=TARGETS)
    assert without.score.tolist() == [33]  # 100/3
    assert with_points.score.tolist() == [38]  # (100 + 50)/4 = 37.5, rounded half up


def test_level_thresholds_are_inclusive_and_configurable() -> None:
    weights = LoyaltyWeights(tenure=0.0, frequency=1.0, value=0.0)
    orders = [3.9, 4.0, 6.4, 6.5, 8.4, 8.5]  # with a target of 10: 39, 40, 64, 65, 84, 85
    result = loyalty.score_loyalty([0.0] * 6, orders, [0.0] * 6, weights=weights, targets=TARGETS)
    assert result.score.tolist() == [39, 40, 64, 65, 84, 85]
    assert result.level_names().tolist() == ["bronze", "silver", "silver", "gold", "gold", "platinum"]
    strict = loyalty.score_loyalty(
        [0.0] * 6,
        orders,
        [0.0] * 6,
        weights=weights,
        targets=TARGETS,
        thresholds=LoyaltyThresholds(silver=50, gold=80, platinum=100),
    )
    assert strict.level_names().tolist() == ["bronze", "bronze", "silver", "silver", "gold", "gold"]


def test_missing_and_negative_inputs_count_as_nothing() -> None:
    result = loyalty.score_loyalty([np.nan, -20.0], [np.nan, -1], [np.nan, -5.0], targets=TARGETS)
    assert result.score.tolist() == [0, 0]


def test_targets_from_workspace_use_the_quantile_of_positive_values() -> None:
    tenure = np.arange(1.0, 11.0) * 10  # 10 … 100
    targets = loyalty.targets_from_workspace(
        tenure, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8], [np.nan] * 10, quantile=0.5
    )
    assert targets.tenure_days == 55.0
    assert targets.orders == 4.5
    assert targets.spend == LoyaltyTargets().spend  # nothing to learn from: the default stays


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        loyalty.score_loyalty([1.0], [1], [1.0], targets=LoyaltyTargets(orders=0.0))
    with pytest.raises(ValueError, match="equal length"):
        loyalty.score_loyalty([1.0, 2.0], [1], [1.0, 2.0])
    with pytest.raises(ValueError, match="thresholds"):
        loyalty.score_loyalty([1.0], [1], [1.0], thresholds=LoyaltyThresholds(silver=70, gold=60))
