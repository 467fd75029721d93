"""CLV, churn danger bands and value tiers: exact on hand-made inputs, and consistent with the models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.process.scores import bgnbd, clv
from rapport.process.scores.bgnbd import BgNbdParams
from rapport.process.scores.gamma_gamma import GammaGammaParams
from tests.process import oracles

PURCHASES = BgNbdParams(r=0.242593, alpha=4.413532, a=0.792886, b=2.425753)
SPEND = GammaGammaParams(p=6.248802, q=3.744588, gamma=15.447748)
MONTH_WEEKS = 365.25 / 12 / 7
HISTORY = (
    np.array([0.0, 1.0, 2.0, 7.0]),
    np.array([0.0, 1.71, 30.43, 8.0]),
    np.array([38.86, 38.86, 38.86, 38.0]),
)
MEANS = np.array([0.0, 11.77, 22.35, 40.0])


def test_clv_is_the_discounted_sum_of_monthly_expected_spend() -> None:
    x, t_x, T = HISTORY
    value = clv.predict_clv(
        PURCHASES, SPEND, x, t_x, T, MEANS, unit_days=7.0, months=3, monthly_discount_rate=0.02, margin=0.5
    )
    for i in range(4):
        spend = oracles.expected_value(SPEND.p, SPEND.q, SPEND.gamma, int(x[i]), MEANS[i]) * 0.5
        cumulative = [0.0] + [
            oracles.expected_purchases(
                PURCHASES.r,
                PURCHASES.alpha,
                PURCHASES.a,
                PURCHASES.b,
                k * MONTH_WEEKS,
                int(x[i]),
                t_x[i],
                T[i],
            )
            for k in (1, 2, 3)
        ]
        expected = sum(spend * (cumulative[k] - cumulative[k - 1]) / 1.02**k for k in (1, 2, 3))
        assert value[i] == pytest.approx(expected, rel=1e-6)


def test_without_discount_clv_telescopes_to_a_year_of_expected_purchases() -> None:
    x, t_x, T = HISTORY
    undiscounted = clv.predict_clv(
        PURCHASES, SPEND, x, t_x, T, MEANS, unit_days=7.0, monthly_discount_rate=0.0
    )
    year = bgnbd.expected_purchases(PURCHASES, 12 * MONTH_WEEKS, x, t_x, T)
    spend = SPEND.p * (SPEND.gamma + x * MEANS) / (SPEND.p * x + SPEND.q - 1)
    np.testing.assert_allclose(undiscounted, year * spend, rtol=1e-12)
    discounted = clv.predict_clv(PURCHASES, SPEND, x, t_x, T, MEANS, unit_days=7.0)
    assert np.all(discounted < undiscounted)


def test_time_unit_only_rescales_alpha() -> None:
    # The same customers in days, with α in days, have the same CLV.
    x, t_x, T = HISTORY
    in_days = BgNbdParams(r=PURCHASES.r, alpha=PURCHASES.alpha * 7, a=PURCHASES.a, b=PURCHASES.b)
    weeks = clv.predict_clv(PURCHASES, SPEND, x, t_x, T, MEANS, unit_days=7.0)
    days = clv.predict_clv(in_days, SPEND, x, t_x * 7, T * 7, MEANS, unit_days=1.0)
    np.testing.assert_allclose(weeks, days, rtol=1e-10)


def test_churn_danger_and_bands() -> None:
    x, t_x, T = HISTORY
    danger = clv.churn_danger(PURCHASES, x, t_x, T)
    np.testing.assert_allclose(danger, 1 - bgnbd.p_alive(PURCHASES, x, t_x, T))
    assert danger[0] == 0.0
    values = [0.0, 0.2499, 0.25, 0.4999, 0.5, 0.7499, 0.75, 1.0]
    assert clv.churn_bands(values).tolist() == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]
    assert clv.churn_band_codes(values).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_value_tiers_top_20_next_30_rest() -> None:
    values = np.arange(10.0)[::-1].copy()  # 9, 8, …, 0
    assert clv.value_tiers(values).tolist() == ["high"] * 2 + ["medium"] * 3 + ["low"] * 5
    # Of 5 customers, 20% is 1 (high) and 50% is 2.5, so the second is medium and the rest low.
    shuffled = np.array([3.0, 9.0, 0.0, 5.0, 8.0])
    assert clv.value_tiers(shuffled).tolist() == ["low", "high", "low", "low", "medium"]


def test_value_tiers_keep_ties_together() -> None:
    # Three customers tie for the top of 10: 30% have a CLV at least theirs, so all three are medium, not high.
    values = [50.0, 50.0, 50.0, 10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0]
    assert clv.value_tiers(values).tolist() == ["medium"] * 5 + ["low"] * 5
    # A workspace where most CLVs are 0 does not split them by row order.
    assert clv.value_tiers([0.0] * 8 + [5.0, 7.0]).tolist() == ["low"] * 8 + ["high", "high"]
    assert clv.value_tiers([]).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8).map(float), max_size=60))
def test_value_tiers_match_the_definition(values: list[float]) -> None:
    n = len(values)
    expected = []
    for v in values:
        at_least = sum(u >= v for u in values)
        expected.append(0 if at_least * 100 <= 20 * n else 1 if at_least * 100 <= 50 * n else 2)
    assert clv.value_tier_codes(values).tolist() == expected


def test_inputs_are_checked() -> None:
    x, t_x, T = HISTORY
    with pytest.raises(ValueError, match="months"):
        clv.predict_clv(PURCHASES, SPEND, x, t_x, T, MEANS, unit_days=7.0, months=0)
    with pytest.raises(ValueError, match="NaN"):
        clv.value_tiers([1.0, float("nan")])
