"""RFM: exact quintiles and segments on hand-made data, order independence, and the documented grid."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.process.scores import rfm
from rapport.process.scores.rfm import SEGMENT_GRID, RfmSegment

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scores.md"


def test_quintiles_of_distinct_values() -> None:
    values = np.arange(1.0, 11.0)
    assert rfm.quintile_scores(values).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm.quintile_scores(values, higher_is_better=False).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_ties_share_a_score_and_the_worst_value_scores_one() -> None:
    # Six of ten bought once: nobody is strictly below them (1); 60% are strictly below a 2 (1 + 3 = 4).
    counts = [1, 1, 1, 1, 1, 1, 2, 2, 3, 9]
    assert rfm.quintile_scores(counts).tolist() == [1] * 6 + [4, 4, 5, 5]
    assert rfm.quintile_scores([7.0, 7.0, 7.0]).tolist() == [1, 1, 1]
    assert rfm.quintile_scores([]).tolist() == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40), st.randoms())
def test_scores_do_not_depend_on_row_order(values: list[int], rnd: object) -> None:
    array = np.array(values, dtype=float)
    order = np.arange(array.size)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    scores = rfm.quintile_scores(array)
    assert rfm.quintile_scores(array[order]).tolist() == scores[order].tolist()
    # Monotone: a larger value never scores lower; equal values score the same.
    for i in range(array.size):
        for j in range(array.size):
            if array[i] > array[j]:
                assert scores[i] >= scores[j]
            if array[i] == array[j]:
                assert scores[i] == scores[j]


def test_score_rfm_on_a_hand_made_workspace() -> None:
    days = [2.0, 10.0, 40.0, 200.0, 400.0, np.nan]
    purchases = [12, 1, 4, 8, 1, 0]
    spend = [900.0, 30.0, 120.0, 700.0, 15.0, 0.0]
    scores = rfm.score_rfm(days, purchases, spend)
    # Five purchasers: a score is 1 + the number of whole fifths strictly worse, i.e. 1 + count worse.
    assert scores.r.tolist() == [5, 4, 3, 2, 1, 0]
    assert scores.f.tolist() == [5, 1, 3, 4, 1, 0]
    assert scores.m.tolist() == [5, 2, 3, 4, 1, 0]
    assert scores.fm.tolist() == [5, 2, 3, 4, 1, 0]
    assert scores.segment_names().tolist() == [
        "champions",
        "potential_loyalists",
        "need_attention",
        "at_risk",
        "lost",
        "never_purchased",
    ]


def test_fm_rounds_half_up() -> None:
    assert rfm.segment_codes([5, 5], [0, 1]).tolist() == [
        rfm.SEGMENTS.index(RfmSegment.NEVER_PURCHASED),
        rfm.SEGMENTS.index(RfmSegment.NEW_CUSTOMERS),
    ]
    scores = rfm.score_rfm([1.0] * 5, [5, 4, 3, 2, 1], [2.0, 1.0, 3.0, 4.0, 5.0])
    assert scores.f.tolist() == [5, 4, 3, 2, 1]
    assert scores.m.tolist() == [2, 1, 3, 4, 5]
    assert scores.fm.tolist() == [4, 3, 3, 3, 3]  # means 3.5, 2.5, 3, 3, 3


def test_every_named_segment_is_reachable() -> None:
    named = {segment for row in SEGMENT_GRID for segment in row}
    assert named == set(RfmSegment) - {RfmSegment.NEVER_PURCHASED}
    assert len(named) == 11


def test_docs_table_is_the_grid() -> None:
    """docs/scores.md shows the mapping as a table with R rows 5..1 and FM columns 1..5."""
    text = DOCS.read_text()
    rows = re.findall(r"^\| \*\*R = (\d)\*\* \|(.+)\|$", text, flags=re.MULTILINE)
    assert [int(r) for r, _ in rows] == [5, 4, 3, 2, 1]
    documented = [tuple(cell.strip() for cell in cells.split("|")) for _, cells in rows]
    assert documented == [tuple(segment.value for segment in row) for row in SEGMENT_GRID]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="equal length"):
        rfm.score_rfm([1.0], [1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="needs its days"):
        rfm.score_rfm([np.nan], [2], [10.0])
    with pytest.raises(ValueError, match="between 0 and 5"):
        rfm.segment_codes([6], [1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False).map(lambda f: round(f, 0)), max_size=60)
)
def test_quintiles_match_the_definition(values: list[float]) -> None:
    array = np.array(values, dtype=float)
    n = array.size
    best_high = [1 + (5 * sum(u < v for u in values)) // n for v in values]
    best_low = [1 + (5 * sum(u > v for u in values)) // n for v in values]
    assert rfm.quintile_scores(array).tolist() == best_high
    assert rfm.quintile_scores(array, higher_is_better=False).tolist() == best_low


@pytest.mark.slow
def test_a_million_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    n = 1_000_000
    purchases = rng.poisson(2.0, n)
    days = np.where(purchases > 0, rng.uniform(0, 365, n), np.nan)
    spend = np.where(purchases > 0, rng.gamma(2.0, 40.0, n) * purchases, 0.0)
    started = time.perf_counter()
    scores = rfm.score_rfm(days, purchases, spend)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nRFM for {n:,} profiles: {elapsed:.3f} s")
    bought = purchases > 0
    # Continuous recency and spend: each quintile holds a fifth of the purchasers.
    for scores_of in (scores.r, scores.m):
        shares = np.bincount(scores_of[bought], minlength=6)[1:] / bought.sum()
        np.testing.assert_allclose(shares, 0.2, atol=1e-5)
    assert (scores.segment[~bought] == rfm.SEGMENTS.index(RfmSegment.NEVER_PURCHASED)).all()
