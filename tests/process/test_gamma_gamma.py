"""Gamma-Gamma: the CDNOW fit reproduces the published estimates; the posterior mean agrees with an integral."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from rapport.process.scores import gamma_gamma
from rapport.process.scores.errors import ScoreFitFailed
from rapport.process.scores.gamma_gamma import GammaGammaParams
from tests.process import oracles
from tests.process.conftest import CdnowSummary


def test_cdnow_fit_matches_the_published_estimates(cdnow_summary: CdnowSummary) -> None:
    fitted = gamma_gamma.fit_gamma_gamma(cdnow_summary.x, cdnow_summary.zbar)
    assert fitted.n_customers == 946
    # Published p = 6.25, q = 3.74, γ = 15.44 (Fader, Hardie & Lee 2005); full precision on this file below.
    assert fitted.p == pytest.approx(6.25, abs=0.005)
    assert fitted.q == pytest.approx(3.74, abs=0.005)
    assert fitted.gamma == pytest.approx(15.44, abs=0.01)
    assert (fitted.p, fitted.q, fitted.gamma) == pytest.approx((6.2488, 3.7446, 15.4477), abs=5e-4)
    # The model's assumption holds on CDNOW: spend barely correlates with frequency.
    assert abs(fitted.spend_frequency_correlation) < 0.2


def test_expected_average_value_hand_computed() -> None:
    params = GammaGammaParams(p=2.0, q=3.0, gamma=10.0)
    # p(γ + x·m)/(p·x + q − 1): (2·(10 + 4·5))/(8 + 2) = 6; with no history the population mean 2·10/2 = 10.
    assert gamma_gamma.expected_average_value(params, [4, 0, 0], [5.0, 0.0, 99.0]).tolist() == [
        6.0,
        10.0,
        10.0,
    ]
    assert params.population_mean == 10.0


@pytest.mark.parametrize(("x", "m"), [(1, 11.77), (2, 22.35), (10, 40.0), (40, 3.5)])
def test_expected_average_value_matches_the_posterior_mean_by_integration(x: int, m: float) -> None:
    params = GammaGammaParams(p=6.2488, q=3.7446, gamma=15.4477)
    closed = float(gamma_gamma.expected_average_value(params, x, m))
    assert closed == pytest.approx(oracles.expected_value(params.p, params.q, params.gamma, x, m), rel=1e-8)


def test_analytic_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(1, 12, 300).astype(float)
    m = rng.gamma(4.0, 8.0, 300)
    point = np.log([3.0, 2.5, 20.0])

    def total(log_params: np.ndarray) -> float:
        return float(gamma_gamma._log_likelihood(log_params, x, m)[0].sum())

    analytic = gamma_gamma._log_likelihood(point, x, m)[1].sum(axis=1)
    np.testing.assert_allclose(analytic, approx_fprime(point, total, 1e-7), rtol=1e-5, atol=1e-4)


def test_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(8)
    p, q, g = 4.0, 5.0, 60.0
    nu = rng.gamma(q, 1.0 / g, 20_000)
    x = rng.integers(1, 15, 20_000)
    # The mean of x Gamma(p, ν) values is Gamma(p·x, x·ν).
    mean = rng.gamma(p * x, 1.0 / (x * nu))
    fitted = gamma_gamma.fit_gamma_gamma(x, mean)
    assert (fitted.p, fitted.q, fitted.gamma) == pytest.approx((p, q, g), rel=0.1)


def test_fit_uses_only_repeat_customers_and_refuses_too_few() -> None:
    with pytest.raises(ScoreFitFailed):
        gamma_gamma.fit_gamma_gamma([0, 0, 3, 2], [0.0, 0.0, 10.0, 12.0])
    with pytest.raises(ScoreFitFailed):
        gamma_gamma.fit_gamma_gamma([1, 2, 3], [10.0, 10.0, 10.0])
    with pytest.raises(ValueError, match="infinite"):
        gamma_gamma.expected_average_value(GammaGammaParams(p=1.0, q=0.9, gamma=1.0), 1, 1.0)
