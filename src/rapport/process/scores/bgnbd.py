"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): purchases and dropout.

Each customer buys at a Poisson rate λ ~ Gamma(r, α) while alive and, after every purchase, drops out with
probability p ~ Beta(a, b). A customer is summarised by ``x`` (repeat purchases), ``t_x`` (time of the last
purchase, measured from the first) and ``T`` (time from the first purchase to the end of observation), all in
one time unit (days or weeks; α is in that unit). See ``summary.summarize_transactions``.

Example::

    params = fit_bgnbd(x, t_x, T)
    alive = p_alive(params, x, t_x, T)
    next_year = expected_purchases(params, 52.0, x, t_x, T)   # with T in weeks
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from rapport.process.scores.errors import ScoreFitFailed

FloatArray = NDArray[np.float64]

# The optimiser works on log-parameters; this keeps exp() finite and the model identifiable.
_LOG_BOUND = 25.0


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Fitted BG/NBD parameters (α in the time unit of the data) and the fit's log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    n_customers: int = 0

    def to_dict(self) -> dict[str, float | int]:
        """Return the parameters as a JSON-able dict."""
        return asdict(self)


def _history(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate and broadcast a customer history to three float arrays of one shape."""
    xs, txs, ts = np.broadcast_arrays(
        np.asarray(x, dtype=np.float64), np.asarray(t_x, dtype=np.float64), np.asarray(T, dtype=np.float64)
    )
    if not (np.isfinite(xs).all() and np.isfinite(txs).all() and np.isfinite(ts).all()):
        raise ValueError("x, t_x and T must be finite")
    if (xs < 0).any() or (xs != np.floor(xs)).any():
        raise ValueError("x must be a non-negative whole number of repeat purchases")
    if (txs < 0).any() or (txs > ts + 1e-9).any():
        raise ValueError("t_x must lie between 0 and T")
    return xs, txs, ts


def individual_log_likelihood(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """Return each customer's BG/NBD log-likelihood (equation 6 of the paper, in logs)."""
    xs, txs, ts = _history(x, t_x, T)
    return _log_likelihood(np.log([params.r, params.alpha, params.a, params.b]), xs, txs, ts)[0]


def _log_likelihood(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return per-customer log-likelihoods and their gradient with respect to the log-parameters."""
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    log_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    log_a2 = betaln(a, b + x) - betaln(a, b)
    log_alpha_t = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    log_a3 = -(r + x) * log_alpha_t
    # A4 exists only for repeat customers; b + x - 1 > 0 there because b > 0 and x >= 1.
    log_a4 = np.full_like(x, -np.inf)
    log_a4[repeat] = np.log(a) - np.log(b + x[repeat] - 1.0) - (r + x[repeat]) * log_alpha_tx[repeat]
    log_a34 = np.logaddexp(log_a3, log_a4)
    w3 = np.exp(log_a3 - log_a34)
    w4 = 1.0 - w3
    ll = log_a1 + log_a2 + log_a34

    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_alpha_t - w4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    psi_abx = digamma(a + b + x)
    d_a = digamma(a + b) - psi_abx + w4 / a
    b_x_1 = np.where(repeat, b + x - 1.0, 1.0)
    d_b = digamma(b + x) - psi_abx - digamma(b) + digamma(a + b) - w4 / b_x_1
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
    return ll, grad


def unique_histories(
    x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.intp]]:
    """Return the distinct (x, t_x, T) rows, how often each occurs, and each input row's index among them.

    Day-level histories repeat a lot, so fitting and predicting on the distinct rows saves most of the work.
    """
    order = np.lexsort((T, t_x, x))
    xs, txs, ts = x[order], t_x[order], T[order]
    start = np.ones(xs.size, dtype=bool)
    start[1:] = (xs[1:] != xs[:-1]) | (txs[1:] != txs[:-1]) | (ts[1:] != ts[:-1])
    first = np.flatnonzero(start)
    counts = np.diff(np.append(first, xs.size)).astype(np.float64)
    inverse = np.empty(xs.size, dtype=np.intp)
    inverse[order] = np.cumsum(start) - 1
    return xs[first], txs[first], ts[first], counts, inverse


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, penalizer: float = 0.0) -> BgNbdParams:
    """Fit BG/NBD by maximum likelihood; ``penalizer`` adds an L2 penalty on the parameters for small data."""
    xs, txs, ts = _history(x, t_x, T)
    if xs.ndim != 1 or xs.size < 2:
        raise ScoreFitFailed("BG/NBD needs a one-dimensional history of at least 2 customers")
    if not (xs > 0).any():
        raise ScoreFitFailed("BG/NBD needs at least one customer with a repeat purchase")
    if (ts <= 0).all():
        raise ScoreFitFailed("BG/NBD needs customers observed for some time (T > 0)")
    cx, ctx, cT, weight, _ = unique_histories(xs, txs, ts)
    total = weight.sum()

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = _log_likelihood(log_params, cx, ctx, cT)
        params = np.exp(log_params)
        # Elementwise sums rather than matmul: BLAS threads gain nothing here and stall on a busy machine.
        value = -float((weight * ll).sum()) / total + penalizer * float((params**2).sum())
        gradient = -(grad * weight).sum(axis=1) / total + 2.0 * penalizer * params**2
        return float(value), gradient

    # Start from r = 1 with α matching the observed repeat rate, and a = b = 1.
    rate = max(float(xs.sum() / max(ts.sum(), 1e-12)), 1e-6)
    start = np.log(np.array([1.0, 1.0 / rate, 1.0, 1.0]))
    start = np.clip(start, -_LOG_BOUND + 1, _LOG_BOUND - 1)
    # imported here: scipy.optimize (with scipy.sparse) weighs 24 MB in every process that loads the app
    from scipy.optimize import minimize

    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
    )
    if not np.isfinite(result.fun) or not np.isfinite(result.x).all():
        raise ScoreFitFailed(f"BG/NBD fit did not converge: {result.message}")
    if np.isclose(np.abs(result.x), _LOG_BOUND).any():
        raise ScoreFitFailed("BG/NBD fit ran to a parameter bound; the data cannot identify the model")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    ll_total = float((weight * _log_likelihood(result.x, cx, ctx, cT)[0]).sum())
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=ll_total, n_customers=int(xs.size))


def _log_dead_odds(params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """Return log of the odds of having dropped out, ``a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)``; -inf if x = 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    out = np.full_like(x, -np.inf)
    xr = x[repeat]
    out[repeat] = (
        np.log(a)
        - np.log(b + xr - 1.0)
        + (r + xr) * (np.log(alpha + T[repeat]) - np.log(alpha + t_x[repeat]))
    )
    return out


def p_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """Return P(alive at T | x, t_x, T); a customer without repeat purchases is alive with probability 1."""
    xs, txs, ts = _history(x, t_x, T)
    return np.asarray(expit(-_log_dead_odds(params, xs, txs, ts)), dtype=np.float64)


def expected_purchases(
    params: BgNbdParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Return E[purchases in (T, T + t] | x, t_x, T] (equation 10 of the paper)."""
    horizon, x, t_x, T = np.broadcast_arrays(np.asarray(t, dtype=np.float64), x, t_x, T)
    xs, txs, ts = _history(x, t_x, T)
    if (horizon < 0).any():
        raise ValueError("t must not be negative")
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-9:  # the closed form divides by a - 1; its limit at a = 1 is continuous
        a = 1.0 + 1e-9
    z = horizon / (alpha + ts + horizon)
    # Euler's transformation of ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x-1; z): x leaves the first two
    # parameters, so the series stays well behaved for heavy buyers instead of multiplying 0 by infinity.
    with np.errstate(invalid="ignore", over="ignore"):
        tail = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + xs - 1.0, z)
        if_alive = (a + b + xs - 1.0) / (a - 1.0) * (1.0 - tail)
    broken = ~np.isfinite(if_alive)
    if broken.any():
        # Very large a and b (next to no dropout) overflow the series while the Beta posterior of p is
        # concentrated at its mean, so plugging in that mean is accurate where the closed form cannot go.
        p_mean = a / (a + b + xs[broken])
        ratio = (alpha + ts[broken]) / (alpha + ts[broken] + p_mean * horizon[broken])
        if_alive[broken] = -np.expm1((r + xs[broken]) * np.log(ratio)) / p_mean
    alive = expit(-_log_dead_odds(params, xs, txs, ts))
    return np.asarray(alive * if_alive, dtype=np.float64)


def expected_purchases_new_customer(params: BgNbdParams, t: ArrayLike) -> FloatArray:
    """Return E[X(t)], the expected repeat purchases of a new customer within t of the first (equation 9)."""
    horizon = np.asarray(t, dtype=np.float64)
    zero = np.zeros_like(horizon)
    return expected_purchases(params, horizon, zero, zero, zero)
