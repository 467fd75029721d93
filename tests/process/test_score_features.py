"""Propensity features as of a day, on hand-made daily arrays, against hand-computed values."""

from __future__ import annotations

import numpy as np

from rapport.process.scores.features import FEATURES, DailyEvents, FeatureRows, totals_before


def _daily(rows: list[tuple[int, int, int, float]]) -> DailyEvents:
    a = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return DailyEvents(
        profile_ids=a[:, 0].astype(np.int64),
        days=a[:, 1].astype(np.int64),
        counts=a[:, 2].astype(np.int64),
        values=a[:, 3],
    )


PURCHASES = _daily([(1, 100, 1, 10.0), (1, 110, 2, 30.0), (3, 105, 1, 5.0), (9, 100, 1, 1.0)])
TARGETS = _daily([(1, 110, 2, 0.0), (3, 120, 1, 0.0)])
ROWS = FeatureRows(
    ids=np.array([1, 2, 3], dtype=np.int64),
    first_day=np.array([90, 111, 104], dtype=np.int64),
    purchases=PURCHASES,
    targets=TARGETS,
)


def test_totals_count_only_days_before_and_ignore_unknown_profiles() -> None:
    counts, values, last = totals_before(ROWS.ids, PURCHASES, 110)
    assert counts.tolist() == [1.0, 0.0, 1.0]  # day 110 itself is not before 110; profile 9 is unknown
    assert values.tolist() == [10.0, 0.0, 5.0]
    assert last[0] == 100 and np.isnan(last[1]) and last[2] == 105
    counts, _, _ = totals_before(ROWS.ids, PURCHASES, 111, start=101)
    assert counts.tolist() == [2.0, 0.0, 1.0]


def test_features_as_of_a_day_and_labels() -> None:
    active, matrix = ROWS.as_of(111, np.array([4, 0, 2]))
    assert active.tolist() == [True, False, True]
    assert matrix.shape == (3, len(FEATURES))
    row = dict(zip(FEATURES, matrix[0].tolist(), strict=True))
    assert row == {
        "orders": 3.0,
        "spend": 40.0,
        "days_since_purchase": 1.0,
        "tenure_days": 21.0,
        "events_30d": 4.0,
        "target_events": 2.0,
        "days_since_target": 1.0,
    }
    third = dict(zip(FEATURES, matrix[2].tolist(), strict=True))
    assert third["orders"] == 1.0 and third["days_since_purchase"] == 6.0
    assert np.isnan(third["days_since_target"]) and third["target_events"] == 0.0
    # label: a target event on a day in [day, day + horizon)
    assert ROWS.labels(110, horizon=10).tolist() == [1, 0, 0]
    assert ROWS.labels(111, horizon=10).tolist() == [0, 0, 1]
    assert ROWS.labels(111, horizon=9).tolist() == [0, 0, 0]


def test_row_order_does_not_change_the_totals() -> None:
    order = np.array([3, 1, 0, 2])
    shuffled = DailyEvents(
        PURCHASES.profile_ids[order], PURCHASES.days[order], PURCHASES.counts[order], PURCHASES.values[order]
    )
    for day in (101, 106, 111):
        sorted_totals = totals_before(ROWS.ids, PURCHASES, day)
        for got, want in zip(totals_before(ROWS.ids, shuffled, day), sorted_totals, strict=True):
            np.testing.assert_array_equal(got, want)
