"""BG/NBD: the CDNOW fit reproduces the published estimates; predictions agree with independent integrals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from rapport.process.scores import bgnbd
from rapport.process.scores.bgnbd import BgNbdParams
from rapport.process.scores.errors import ScoreFitFailed
from tests.process import oracles
from tests.process.conftest import CdnowSummary

# Fader, Hardie & Lee (2005), table/figure values, and the full-precision MLE on the shipped summary.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
FULL = {"r": 0.2426, "alpha": 4.4135, "a": 0.7929, "b": 2.4258}
CDNOW = BgNbdParams(r=0.242593, alpha=4.413532, a=0.792886, b=2.425753)


@pytest.fixture(scope="module")
def fitted(cdnow_summary: CdnowSummary) -> BgNbdParams:
    return bgnbd.fit_bgnbd(cdnow_summary.x, cdnow_summary.t_x, cdnow_summary.T)


def test_cdnow_fit_matches_the_published_estimates(fitted: BgNbdParams) -> None:
    for name, value in PUBLISHED.items():
        assert getattr(fitted, name) == pytest.approx(value, abs=0.005), name
    for name, value in FULL.items():
        assert getattr(fitted, name) == pytest.approx(value, abs=5e-5), name
    # The paper reports a log-likelihood of -9582.4 at the optimum.
    assert fitted.log_likelihood == pytest.approx(-9582.43, abs=0.01)
    assert fitted.n_customers == 2357


def test_fit_is_a_maximum_of_the_likelihood(cdnow_summary: CdnowSummary, fitted: BgNbdParams) -> None:
    def total(params: BgNbdParams) -> float:
        return float(
            bgnbd.individual_log_likelihood(params, cdnow_summary.x, cdnow_summary.t_x, cdnow_summary.T).sum()
        )

    best = total(fitted)
    assert best == pytest.approx(fitted.log_likelihood, abs=1e-6)
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.99, 1.01):
            nudged = BgNbdParams(**{**fitted.to_dict(), name: getattr(fitted, name) * factor})
            assert total(nudged) < best


def test_fit_on_collapsed_histories_is_the_fit_on_every_row(
    cdnow_summary: CdnowSummary, fitted: BgNbdParams
) -> None:
    """The fit collapses identical (x, t_x, T) rows into one with a weight (what makes a million customers
    cheap): same likelihood, same estimates; three copies of CDNOW give CDNOW's parameters."""
    x, t_x, T = (np.tile(a, 3) for a in (cdnow_summary.x, cdnow_summary.t_x, cdnow_summary.T))
    ux, utx, uT, counts, inverse = bgnbd.unique_histories(x, t_x, T)
    assert ux.size < cdnow_summary.x.size and counts.sum() == x.size
    assert (ux[inverse] == x).all() and (utx[inverse] == t_x).all() and (uT[inverse] == T).all()
    per_row = bgnbd.individual_log_likelihood(fitted, x, t_x, T).sum()
    weighted = (counts * bgnbd.individual_log_likelihood(fitted, ux, utx, uT)).sum()
    assert weighted == pytest.approx(per_row, rel=1e-12)
    tripled = bgnbd.fit_bgnbd(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(tripled, name) == pytest.approx(getattr(fitted, name), rel=1e-5), name
    assert tripled.log_likelihood == pytest.approx(3 * fitted.log_likelihood, rel=1e-9)
    assert tripled.n_customers == 3 * 2357


def test_analytic_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    T = rng.uniform(5, 40, 200)
    x = rng.poisson(2, 200).astype(float)
    t_x = np.where(x > 0, rng.uniform(0, 1, 200) * T, 0.0)
    point = np.log([0.7, 3.0, 1.4, 2.2])

    def total(log_params: np.ndarray) -> float:
        return float(bgnbd._log_likelihood(log_params, x, t_x, T)[0].sum())

    analytic = bgnbd._log_likelihood(point, x, t_x, T)[1].sum(axis=1)
    numeric = approx_fprime(point, total, 1e-7)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-4)


def test_published_expected_purchases_of_customer_with_two_repeats() -> None:
    # lifetimes' docs and the paper's example: x = 2, t_x = 30.43, T = 38.86 over the next 39 weeks.
    expected = bgnbd.expected_purchases(CDNOW, 39.0, 2, 30.43, 38.86)
    assert float(expected) == pytest.approx(1.226, abs=5e-4)
    assert float(expected) == pytest.approx(
        oracles.expected_purchases(CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b, 39.0, 2, 30.43, 38.86), rel=1e-7
    )


# (x, t_x, T): a one-off buyer, recent and lapsed repeaters, a heavy buyer, a brand-new customer.
CUSTOMERS = [
    (0, 0.0, 38.86),
    (1, 1.71, 38.86),
    (2, 30.43, 38.86),
    (7, 8.0, 38.0),
    (25, 36.0, 37.0),
    (3, 5.0, 5.0),
]
PARAMS = [
    CDNOW,
    BgNbdParams(r=1.3, alpha=6.0, a=2.5, b=4.0),  # a > 1
    BgNbdParams(r=0.5, alpha=60.0, a=0.4, b=9.0),  # days-like α, small a
]


@pytest.mark.parametrize("params", PARAMS, ids=["cdnow", "a>1", "small-a"])
def test_p_alive_matches_bayes_by_integration(params: BgNbdParams) -> None:
    x, t_x, T = (np.array(c) for c in zip(*CUSTOMERS, strict=True))
    closed = bgnbd.p_alive(params, x, t_x, T)
    for i, (xi, txi, Ti) in enumerate(CUSTOMERS):
        oracle = oracles.p_alive(params.r, params.alpha, params.a, params.b, xi, txi, Ti)
        assert closed[i] == pytest.approx(oracle, rel=1e-6, abs=1e-9), CUSTOMERS[i]


@pytest.mark.parametrize("params", PARAMS, ids=["cdnow", "a>1", "small-a"])
@pytest.mark.parametrize("t", [1.0, 13.0, 52.0])
def test_expected_purchases_match_integration(params: BgNbdParams, t: float) -> None:
    x, t_x, T = (np.array(c) for c in zip(*CUSTOMERS, strict=True))
    closed = bgnbd.expected_purchases(params, t, x, t_x, T)
    for i, (xi, txi, Ti) in enumerate(CUSTOMERS):
        oracle = oracles.expected_purchases(params.r, params.alpha, params.a, params.b, t, xi, txi, Ti)
        assert closed[i] == pytest.approx(oracle, rel=1e-6), CUSTOMERS[i]


def test_expected_purchases_of_a_new_customer_is_the_unconditional_mean() -> None:
    # A customer just acquired (T = 0) has x = 0, t_x = 0: the same integral with P(alive) = 1.
    for t in (10.0, 39.0, 78.0):
        oracle = oracles.expected_purchases(CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b, t, 0, 0.0, 0.0)
        assert float(bgnbd.expected_purchases_new_customer(CDNOW, t)) == pytest.approx(oracle, rel=1e-7)


def test_closed_form_limits() -> None:
    assert bgnbd.p_alive(CDNOW, [0, 0], [0.0, 0.0], [1.0, 50.0]).tolist() == [1.0, 1.0]
    assert bgnbd.expected_purchases(CDNOW, 0.0, [0, 4], [0.0, 20.0], [30.0, 30.0]).tolist() == [0.0, 0.0]
    # More time ahead means more expected purchases; a later last purchase means more likely alive.
    horizon = bgnbd.expected_purchases(CDNOW, np.array([1.0, 10.0, 100.0]), 3, 20.0, 30.0)
    assert np.all(np.diff(horizon) > 0)
    assert np.all(np.diff(bgnbd.p_alive(CDNOW, 3, np.array([5.0, 15.0, 29.0]), 30.0)) > 0)


def test_near_degenerate_dropout_falls_back_to_the_concentrated_posterior() -> None:
    # Huge a and b (as fitted on data with almost no dropout) overflow the hypergeometric series; the Beta
    # posterior then sits at p = a/(a+b), where P(alive) and the purchases of an alive customer are direct.
    params = BgNbdParams(r=0.6, alpha=12.0, a=7.5e6, b=1.9e7)
    customers = [(0, 0.0, 200.0), (5, 100.0, 200.0), (40, 300.0, 320.0)]
    x, t_x, T = (np.array(c) for c in zip(*customers, strict=True))
    closed = bgnbd.expected_purchases(params, 30.0, x, t_x, T)
    p = params.a / (params.a + params.b)
    odds = np.where(x > 0, p / (1 - p) * ((params.alpha + T) / (params.alpha + t_x)) ** (params.r + x), 0.0)
    if_alive = (1 - ((params.alpha + T) / (params.alpha + T + p * 30.0)) ** (params.r + x)) / p
    np.testing.assert_allclose(closed, if_alive / (1 + odds), rtol=1e-4)


def _simulate(params: BgNbdParams, n: int, horizon: float, seed: int) -> tuple[np.ndarray, ...]:
    """Draw customers from the BG/NBD story itself, observed for ``horizon`` days after their first purchase."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    T = rng.integers(1, int(horizon) + 1, n).astype(float)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)  # BG/NBD drops customers only after a repeat purchase
    while active.any():
        now[active] += rng.exponential(1.0, active.sum()) / lam[active]
        bought = active & (now <= T)
        x[bought] += 1
        t_x[bought] = now[bought]
        active = bought & (rng.random(n) >= p)
    return x, np.floor(t_x), T


def test_fit_recovers_the_parameters_of_simulated_day_level_data() -> None:
    truth = BgNbdParams(r=0.8, alpha=40.0, a=0.9, b=4.0)
    x, t_x, T = _simulate(truth, 30_000, 365.0, seed=11)
    fitted = bgnbd.fit_bgnbd(x, t_x, T)
    assert fitted.r == pytest.approx(truth.r, rel=0.08)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.1)
    assert fitted.a == pytest.approx(truth.a, rel=0.15)
    assert fitted.b == pytest.approx(truth.b, rel=0.15)


def test_fit_refuses_data_without_repeat_purchases() -> None:
    with pytest.raises(ScoreFitFailed):
        bgnbd.fit_bgnbd([0, 0, 0], [0.0, 0.0, 0.0], [10.0, 20.0, 30.0])


def test_history_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and T"):
        bgnbd.p_alive(CDNOW, [1], [12.0], [10.0])
    with pytest.raises(ValueError, match="whole number"):
        bgnbd.p_alive(CDNOW, [1.5], [1.0], [10.0])


def test_a_equal_to_one_is_the_limit_of_its_neighbours() -> None:
    # The closed form divides by a − 1; at a = 1 exactly it must still give the continuous limit.
    near = [
        float(bgnbd.expected_purchases(BgNbdParams(r=0.5, alpha=5.0, a=a, b=2.0), 20.0, 3, 10.0, 15.0))
        for a in (1.0 - 1e-5, 1.0, 1.0 + 1e-5)
    ]
    assert near[1] == pytest.approx((near[0] + near[2]) / 2, rel=1e-5)
    oracle = oracles.expected_purchases(0.5, 5.0, 1.0, 2.0, 20.0, 3, 10.0, 15.0)
    assert near[1] == pytest.approx(oracle, rel=1e-5)


def test_penalizer_shrinks_the_parameters(cdnow_summary: CdnowSummary, fitted: BgNbdParams) -> None:
    shrunk = bgnbd.fit_bgnbd(cdnow_summary.x, cdnow_summary.t_x, cdnow_summary.T, penalizer=0.01)
    assert shrunk.alpha < fitted.alpha
    assert shrunk.log_likelihood < fitted.log_likelihood
