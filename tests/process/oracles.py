"""Independent evaluations of the BG/NBD and Gamma-Gamma quantities by numerical integration.

They start from the model's definition (priors times the likelihood of the history), not from the closed
forms in src, so agreement checks the algebra and the numerics of the closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import integrate


def p_alive(r: float, alpha: float, a: float, b: float, x: int, t_x: float, T: float) -> float:
    """P(alive at T) = E[L_alive] / (E[L_alive] + E[L_dead]) over the Gamma(r, α) × Beta(a, b) prior.

    L_alive = λ^x e^{−λT} (1−p)^x and L_dead = λ^x e^{−λ t_x} p (1−p)^{x−1}; each factorises into a λ part
    and a p part, and every part is integrated numerically against its prior.
    """
    if x == 0:
        return 1.0
    log_norm = r * math.log(alpha) - math.lgamma(r)

    def over_lambda(until: float) -> float:
        # Gamma(r, α) density times λ^x e^{−λ·until}, in logs to stay finite for heavy buyers.
        def integrand(lam: float) -> float:
            if lam == 0.0:
                return 0.0
            return math.exp(log_norm + (r + x - 1.0) * math.log(lam) - (alpha + until) * lam)

        return integrate.quad(integrand, 0, math.inf, epsabs=0.0, epsrel=1e-12, limit=500)[0]

    alive = over_lambda(T) * _beta_mean(lambda p: (1 - p) ** x, a, b)
    dead = over_lambda(t_x) * _beta_mean(lambda p: p * (1 - p) ** (x - 1), a, b)
    return alive / (alive + dead)


def _beta_mean(f: Callable[[float], float], a: float, b: float) -> float:
    """E[f(p)] for p ~ Beta(a, b), integrated over u = p^a so the p^(a−1) singularity at 0 disappears."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) - math.log(a)

    def integrand(u: float) -> float:
        p = u ** (1.0 / a)
        return f(p) * math.exp(log_norm + (b - 1.0) * math.log1p(-p)) if p < 1.0 else 0.0

    return integrate.quad(integrand, 0, 1, epsabs=0.0, epsrel=1e-12, limit=500)[0]


def expected_purchases(
    r: float, alpha: float, a: float, b: float, t: float, x: int, t_x: float, T: float
) -> float:
    """E[Y(t) | history] = P(alive) · E_p[(1 − ((α+T)/(α+T+p·t))^(r+x)) / p] with p ~ Beta(a, b + x).

    Given alive at T, λ | history ~ Gamma(r + x, α + T) and p | history ~ Beta(a, b + x), independent, and
    an alive customer buys E[X(t) | λ, p] = (1 − e^{−λpt}) / p (equation 7 of the paper); λ is integrated
    out in closed form (the Gamma Laplace transform), p numerically.
    """

    def if_alive(p: float) -> float:
        if p == 0.0:
            return (r + x) * t / (alpha + T)
        return -math.expm1(-(r + x) * math.log1p(p * t / (alpha + T))) / p

    return p_alive(r, alpha, a, b, x, t_x, T) * _beta_mean(if_alive, a, b + x)


def expected_value(p: float, q: float, gamma: float, x: int, mean_value: float) -> float:
    """E[p/ν | x, m] with the posterior of ν ∝ ν^(q−1) e^(−γν) · ν^(px) e^(−ν·x·m), integrated numerically."""

    def density(nu: float) -> float:
        return math.exp((q - 1 + p * x) * math.log(nu) - (gamma + x * mean_value) * nu)

    top = 80.0 * (p * x + q) / (gamma + x * mean_value)
    kw = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 500}
    norm = integrate.quad(density, 0, top, **kw)[0]
    return integrate.quad(lambda nu: p / nu * density(nu), 0, top, **kw)[0] / norm
