"""RFM: recency, frequency and monetary quintile scores and the named RFM segment of each profile.

One call scores one workspace. Among the profiles that purchased, each score is one plus the number of whole
fifths of purchasers that do strictly worse (longer since the last purchase for R, fewer purchases for F, less
spend for M)::

    score = 1 + floor(5 · #{purchasers strictly worse} / #purchasers)

so equal inputs always get equal scores whatever the row order, the worst value always scores 1, and a value
needs at least 80% of purchasers strictly below it to score 5. Profiles with no purchase score R = F = M = 0
and fall in the segment ``never_purchased``. The segment comes from R and FM = round-half-up((F + M) / 2)
through the grid in ``SEGMENT_GRID`` (documented in docs/scores.md).

Example::

    scores = score_rfm(days_since_last, purchases, spend)
    scores.segment_names()   # array(['champions', 'never_purchased', ...])
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray


class RfmSegment(StrEnum):
    """The named RFM segments; the order fixes the integer code stored for each profile."""

    CHAMPIONS = "champions"
    LOYAL_CUSTOMERS = "loyal_customers"
    POTENTIAL_LOYALISTS = "potential_loyalists"
    NEW_CUSTOMERS = "new_customers"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    AT_RISK = "at_risk"
    CANT_LOSE_THEM = "cant_lose_them"
    HIBERNATING = "hibernating"
    LOST = "lost"
    NEVER_PURCHASED = "never_purchased"


SEGMENTS: tuple[RfmSegment, ...] = tuple(RfmSegment)

_S = RfmSegment
# Rows: R = 5 (bought most recently) down to R = 1; columns: FM = 1 … 5.
SEGMENT_GRID: tuple[tuple[RfmSegment, ...], ...] = (
    (_S.NEW_CUSTOMERS, _S.POTENTIAL_LOYALISTS, _S.LOYAL_CUSTOMERS, _S.CHAMPIONS, _S.CHAMPIONS),
    (_S.PROMISING, _S.POTENTIAL_LOYALISTS, _S.LOYAL_CUSTOMERS, _S.CHAMPIONS, _S.CHAMPIONS),
    (_S.PROMISING, _S.ABOUT_TO_SLEEP, _S.NEED_ATTENTION, _S.LOYAL_CUSTOMERS, _S.LOYAL_CUSTOMERS),
    (_S.HIBERNATING, _S.ABOUT_TO_SLEEP, _S.AT_RISK, _S.AT_RISK, _S.CANT_LOSE_THEM),
    (_S.LOST, _S.HIBERNATING, _S.AT_RISK, _S.CANT_LOSE_THEM, _S.CANT_LOSE_THEM),
)

# _LOOKUP[r, fm] is the segment code; row and column 0 are "never purchased".
_LOOKUP = np.full((6, 6), SEGMENTS.index(_S.NEVER_PURCHASED), dtype=np.int8)
for _row, _segments in enumerate(SEGMENT_GRID):
    for _column, _segment in enumerate(_segments):
        _LOOKUP[5 - _row, _column + 1] = SEGMENTS.index(_segment)


@dataclass(frozen=True, slots=True)
class RfmScores:
    """R, F, M scores (0 for never purchased, else 1-5), FM and the segment code of each profile."""

    r: NDArray[np.int8]
    f: NDArray[np.int8]
    m: NDArray[np.int8]
    fm: NDArray[np.int8]
    segment: NDArray[np.int8]

    def segment_names(self) -> NDArray[np.str_]:
        """Return the segment name of each profile."""
        return np.asarray([s.value for s in SEGMENTS])[self.segment]


def quintile_scores(values: ArrayLike, *, higher_is_better: bool = True) -> NDArray[np.int8]:
    """Return 1 + floor(5 · share of values strictly worse) for each value (1-5; ties share a score)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("values must be one-dimensional")
    if np.isnan(v).any():
        raise ValueError("values must not be NaN")
    n = v.size
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    if not higher_is_better:
        v = -v
    # floor(5 · #worse / n) ≥ k  ⇔  #worse ≥ c_k = ceil(k·n/5)  ⇔  v > the c_k-th smallest value, so four
    # order statistics (a linear-time partition) replace a full sort and a search per profile.
    cuts = (np.arange(1, 5) * n + 4) // 5
    bounds = np.partition(v, cuts - 1)[cuts - 1]
    scores = np.ones(n, dtype=np.int8)
    for bound in bounds:
        scores += v > bound
    return scores


def segment_codes(r: ArrayLike, fm: ArrayLike) -> NDArray[np.int8]:
    """Return the segment code of each (R, FM) pair; 0 in either means never purchased."""
    rs = np.asarray(r, dtype=np.int64)
    fms = np.asarray(fm, dtype=np.int64)
    if ((rs < 0) | (rs > 5) | (fms < 0) | (fms > 5)).any():
        raise ValueError("R and FM must lie between 0 and 5")
    return _LOOKUP[rs, fms]


def score_rfm(days_since_last: ArrayLike, purchases: ArrayLike, spend: ArrayLike) -> RfmScores:
    """Score one workspace's profiles; a profile with ``purchases`` = 0 scores 0 and is never purchased."""
    days = np.asarray(days_since_last, dtype=np.float64)
    count = np.asarray(purchases, dtype=np.float64)
    money = np.asarray(spend, dtype=np.float64)
    if not (days.ndim == count.ndim == money.ndim == 1) or not (days.size == count.size == money.size):
        raise ValueError("days_since_last, purchases and spend must be one-dimensional and of equal length")
    if np.isnan(count).any() or (count < 0).any():
        raise ValueError("purchases must be a non-negative number")
    bought = count > 0
    if np.isnan(days[bought]).any() or np.isnan(money[bought]).any():
        raise ValueError("a profile with purchases needs its days since the last one and its spend")
    r = np.zeros(days.size, dtype=np.int8)
    f = np.zeros(days.size, dtype=np.int8)
    m = np.zeros(days.size, dtype=np.int8)
    r[bought] = quintile_scores(days[bought], higher_is_better=False)
    f[bought] = quintile_scores(count[bought])
    m[bought] = quintile_scores(money[bought])
    fm = ((f.astype(np.int16) + m + 1) // 2).astype(np.int8)
    return RfmScores(r=r, f=f, m=m, fm=fm, segment=segment_codes(r, fm))
