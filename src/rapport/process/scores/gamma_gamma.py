"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013 note).

A customer's transaction values are Gamma(p, ν) around their own mean p/ν, with ν ~ Gamma(q, γ) across
customers. It is fitted on the repeat customers only (x > 0) from their mean repeat value and their number of
repeat transactions, and assumes spend does not depend on purchase frequency (``spend_frequency_correlation``
is reported so a service can warn when that is far from 0).

Example::

    gg = fit_gamma_gamma(x, mean_value)
    spend = expected_average_value(gg, x, mean_value)   # population mean for x = 0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln

from rapport.process.scores.errors import ScoreFitFailed

FloatArray = NDArray[np.float64]

_LOG_BOUND = 25.0


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters and diagnostics of the fit."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    n_customers: int = 0
    spend_frequency_correlation: float = float("nan")

    def to_dict(self) -> dict[str, float | int]:
        """Return the parameters as a JSON-able dict."""
        return asdict(self)

    @property
    def population_mean(self) -> float:
        """Return the mean transaction value of a customer with no history, p·γ/(q-1)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else float("inf")


def _repeaters(x: ArrayLike, mean_value: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the (x, mean value) of repeat customers with a positive mean value."""
    xs, ms = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(mean_value, dtype=np.float64))
    if not (np.isfinite(xs).all() and np.isfinite(ms).all()):
        raise ValueError("x and mean_value must be finite")
    keep = (xs > 0) & (ms > 0)
    return xs[keep], ms[keep]


def _log_likelihood(log_params: FloatArray, x: FloatArray, m: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return per-customer log-likelihoods of the mean value and their gradient in log-parameters."""
    p, q, g = np.exp(log_params)
    px = p * x
    log_m = np.log(m)
    log_gxm = np.log(g + x * m)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + (px - 1.0) * log_m
        + px * np.log(x)
        - (px + q) * log_gxm
    )
    psi = digamma(px + q)
    d_p = x * (psi - digamma(px) + log_m + np.log(x) - log_gxm)
    d_q = psi - digamma(q) + np.log(g) - log_gxm
    d_g = q / g - (px + q) / (g + x * m)
    return ll, np.stack([d_p * p, d_q * q, d_g * g])


def fit_gamma_gamma(x: ArrayLike, mean_value: ArrayLike, *, penalizer: float = 0.0) -> GammaGammaParams:
    """Fit Gamma-Gamma by maximum likelihood on the customers with x > 0 and a positive mean value."""
    xs, ms = _repeaters(x, mean_value)
    if xs.size < 3:
        raise ScoreFitFailed("Gamma-Gamma needs at least 3 repeat customers with a positive spend")
    if np.ptp(ms) == 0:
        raise ScoreFitFailed("Gamma-Gamma needs some variation in spend between customers")
    n = float(xs.size)

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = _log_likelihood(log_params, xs, ms)
        params = np.exp(log_params)
        value = -ll.sum() / n + penalizer * float((params**2).sum())
        return float(value), -grad.sum(axis=1) / n + 2.0 * penalizer * params**2

    # Moment-style start: p = 1, q = 2 (finite mean), γ so that p·γ/(q-1) equals the observed mean.
    start = np.log(np.array([1.0, 2.0, float(ms.mean())]))
    # imported here: scipy.optimize (with scipy.sparse) weighs 24 MB in every process that loads the app
    from scipy.optimize import minimize

    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 3,
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
    )
    if not np.isfinite(result.fun) or not np.isfinite(result.x).all():
        raise ScoreFitFailed(f"Gamma-Gamma fit did not converge: {result.message}")
    if np.isclose(np.abs(result.x), _LOG_BOUND).any():
        raise ScoreFitFailed("Gamma-Gamma fit ran to a parameter bound; the data cannot identify the model")
    p, q, g = (float(v) for v in np.exp(result.x))
    correlation = float(np.corrcoef(xs, ms)[0, 1]) if np.ptp(xs) > 0 else float("nan")
    return GammaGammaParams(
        p=p,
        q=q,
        gamma=g,
        log_likelihood=float(_log_likelihood(result.x, xs, ms)[0].sum()),
        n_customers=int(xs.size),
        spend_frequency_correlation=correlation,
    )


def expected_average_value(params: GammaGammaParams, x: ArrayLike, mean_value: ArrayLike) -> FloatArray:
    """Return E[transaction value | x, mean value] = p(γ + x·m)/(p·x + q - 1); p·γ/(q-1) when x = 0."""
    if params.q <= 1.0:
        raise ValueError("the expected value is infinite when q <= 1")
    xs, ms = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(mean_value, dtype=np.float64))
    ms = np.where(xs > 0, ms, 0.0)
    return np.asarray(
        params.p * (params.gamma + xs * ms) / (params.p * xs + params.q - 1.0), dtype=np.float64
    )
