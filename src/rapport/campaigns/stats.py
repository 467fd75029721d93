"""Measurement of campaign arms: rates with Wilson intervals, lift against control with a Newcombe interval,
a two-proportion z-test, and Thompson sampling's probability of being best. Pure (numpy/scipy).

    arms = [Arm("A", n=1000, k=52), Arm("B", n=1000, k=71)]
    pick_winner(arms, method="significance")   # Winner(key="B", significant=..., p_value=..., ...)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval (95 % unless said otherwise)."""

    low: float
    high: float


def rate(k: int, n: int) -> float:
    """``k / n``, 0 when nobody was counted."""
    return k / n if n else 0.0


def wilson(k: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of a proportion (good at small n and rates near 0)."""
    if n <= 0:
        return Interval(0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval for p1 − p2 (method 10 of Newcombe 1998)."""
    p1, p2 = rate(k1, n1), rate(k2, n2)
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return Interval(low, high)


def z_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when it cannot be computed)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))  # 2·P(Z > |z|), without importing scipy.stats (22 MB)


def prob_best(
    successes: Sequence[int], trials: Sequence[int], *, draws: int = 20_000, seed: int = 0
) -> list[float]:
    """Thompson sampling: the probability that each arm has the highest rate under Beta(1+k, 1+n−k)."""
    if not successes:
        return []
    rng = np.random.default_rng(seed)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    samples = rng.beta(1 + k[:, None], 1 + np.maximum(n - k, 0)[:, None], size=(len(k), draws))
    wins = np.bincount(samples.argmax(axis=0), minlength=len(k))
    return [float(w) / draws for w in wins]


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm's count of successes ``k`` (conversions, clicks or opens) among ``n`` recipients."""

    key: str
    n: int
    k: int


@dataclass(frozen=True, slots=True)
class Winner:
    """The chosen arm, and how sure we are: ``significant`` at ``alpha`` against the runner-up, or the
    Thompson probability of being best."""

    key: str
    significant: bool
    p_value: float | None
    probability_best: float | None
    reason: str


def pick_winner(
    arms: Sequence[Arm], *, method: str = "significance", alpha: float = 0.05, seed: int = 0
) -> Winner:
    """Pick the best arm by observed rate; say whether the evidence is significant (or Thompson P(best))."""
    if not arms:
        raise ValueError("no arms to choose from")
    ranked = sorted(arms, key=lambda a: (rate(a.k, a.n), a.n), reverse=True)
    best = ranked[0]
    if method == "thompson":
        probs = prob_best([a.k for a in arms], [a.n for a in arms], seed=seed)
        index = int(np.argmax(probs))
        chosen = arms[index]
        return Winner(
            chosen.key,
            probs[index] >= 1 - alpha,
            None,
            probs[index],
            f"Thompson sampling: P(best) = {probs[index]:.1%}",
        )
    if len(ranked) == 1:
        return Winner(best.key, False, None, None, "only one variant")
    runner = ranked[1]
    p = z_test(best.k, best.n, runner.k, runner.n)
    if p < alpha:
        reason = f"{best.key} beats {runner.key} (p = {p:.3g})"
    else:
        reason = f"no significant difference (p = {p:.3g}); {best.key} has the best observed rate"
    return Winner(best.key, p < alpha, p, None, reason)
