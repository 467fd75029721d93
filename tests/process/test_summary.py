"""Transactions to (x, t_x, T, mean value): CDNOW's raw file reproduces its published summary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from rapport.process.scores.summary import days_per_unit, summarize_transactions
from tests.process.conftest import CdnowSummary, CdnowTransactions


def test_cdnow_raw_transactions_reproduce_the_shipped_summary(
    cdnow_transactions: CdnowTransactions, cdnow_summary: CdnowSummary
) -> None:
    summary = summarize_transactions(
        cdnow_transactions.ids,
        cdnow_transactions.days,
        cdnow_transactions.values,
        observation_end=date(1997, 9, 30),
        unit="weeks",
    )
    assert summary.customer_ids.tolist() == cdnow_summary.ids.tolist()
    assert summary.x.tolist() == cdnow_summary.x.tolist()
    # The CSV rounds to 2 decimals.
    np.testing.assert_allclose(summary.t_x, cdnow_summary.t_x, rtol=0, atol=0.005 + 1e-9)
    np.testing.assert_allclose(summary.T, cdnow_summary.T, rtol=0, atol=0.005 + 1e-9)
    np.testing.assert_allclose(summary.mean_value, cdnow_summary.zbar, rtol=0, atol=0.005 + 1e-9)
    assert summary.unit_days == 7.0


def test_same_day_purchases_count_once_and_later_ones_are_ignored() -> None:
    ids = ["b", "a", "a", "a", "a", "b", "c"]
    stamps = [
        datetime(2024, 1, 10, 9),
        datetime(2024, 1, 1, 9),
        datetime(2024, 1, 1, 18),  # same day as the first: one purchase worth 30
        datetime(2024, 1, 15, 12),
        datetime(2024, 2, 1, 8),  # after the end of observation
        datetime(2024, 1, 31, 23, 59),  # on the last day: counted
        datetime(2024, 2, 2),  # customer c first buys after the end: not in the summary
    ]
    values = [5.0, 10.0, 20.0, 7.0, 100.0, 9.0, 1.0]
    summary = summarize_transactions(ids, stamps, values, observation_end=date(2024, 1, 31))
    assert summary.customer_ids.tolist() == ["a", "b"]
    assert summary.x.tolist() == [1.0, 1.0]
    assert summary.t_x.tolist() == [14.0, 21.0]
    assert summary.T.tolist() == [30.0, 21.0]
    assert summary.mean_value.tolist() == [7.0, 9.0]
    assert summary.total_value.tolist() == [37.0, 14.0]
    assert summary.purchase_days.tolist() == [2, 2]


def test_units_and_one_time_buyers() -> None:
    stamps = np.array(["2024-03-01", "2024-03-15", "2024-03-29", "2024-03-08"], dtype="datetime64[D]")
    summary = summarize_transactions(
        [1, 1, 1, 2], stamps, [4.0, 6.0, 8.0, 3.0], observation_end=np.datetime64("2024-04-05"), unit="weeks"
    )
    assert summary.x.tolist() == [2.0, 0.0]
    assert summary.t_x.tolist() == [4.0, 0.0]
    assert summary.T.tolist() == [5.0, 4.0]
    assert summary.mean_value.tolist() == [7.0, 0.0]
    monthly = summarize_transactions(
        [1, 1], stamps[:2], [1.0, 1.0], observation_end=date(2024, 3, 29), unit=14.0
    )
    assert monthly.t_x.tolist() == [1.0]
    assert monthly.T.tolist() == [2.0]


def test_aware_timestamps_are_taken_in_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    # 23:30 in New York on 1 May is 04:30 UTC on 2 May: a different day from the 08:00 UTC purchase on 1 May.
    stamps = [datetime(2024, 5, 1, 8, tzinfo=UTC), datetime(2024, 5, 1, 23, 30, tzinfo=eastern)]
    summary = summarize_transactions(["p", "p"], stamps, [1.0, 2.0], observation_end=date(2024, 5, 8))
    assert summary.x.tolist() == [1.0]
    assert summary.t_x.tolist() == [1.0]


def test_empty_input_gives_an_empty_summary() -> None:
    summary = summarize_transactions(
        [], np.array([], dtype="datetime64[D]"), [], observation_end=date(2024, 1, 1)
    )
    assert summary.customer_ids.size == 0
    assert summary.x.size == summary.T.size == 0


def test_bad_input_is_refused() -> None:
    unknown: Any = "months"
    with pytest.raises(ValueError, match="equal length"):
        summarize_transactions([1, 2], [date(2024, 1, 1)], [1.0], observation_end=date(2024, 1, 2))
    with pytest.raises(ValueError, match="unknown time unit"):
        days_per_unit(unknown)
    with pytest.raises(ValueError, match="positive"):
        days_per_unit(0.0)
