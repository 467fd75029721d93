"""The pure parts of campaigns: stable arm assignment, interval statistics, local-time scheduling, and
date-trigger occurrences."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapport.campaigns import assign, schedule, stats
from rapport.campaigns.triggers import occurrence


def test_assignment_is_stable_and_follows_the_shares() -> None:
    plan = assign.ArmPlan(control_percent=10, variants=(("A", 1), ("B", 3)))
    arms = [assign.arm_for(plan, seed="campaign:1", profile_id=pid) for pid in range(20_000)]
    assert arms == [assign.arm_for(plan, seed="campaign:1", profile_id=pid) for pid in range(20_000)]
    control = arms.count("control") / len(arms)
    a, b = arms.count("A"), arms.count("B")
    assert 0.09 < control < 0.11
    assert 2.8 < b / a < 3.2
    other = [assign.arm_for(plan, seed="campaign:2", profile_id=pid) for pid in range(2_000)]
    assert other != arms[:2_000]  # another campaign draws another control group


def test_the_control_group_does_not_change_when_variants_or_the_test_share_do() -> None:
    before = assign.ArmPlan(control_percent=20, variants=(("A", 1),))
    after = assign.ArmPlan(control_percent=20, variants=(("A", 1), ("B", 1), ("C", 2)), test_percent=30)
    for pid in range(3_000):
        was = assign.arm_for(before, seed="s", profile_id=pid) == "control"
        assert was == (assign.arm_for(after, seed="s", profile_id=pid) == "control")


def test_a_test_phase_makes_the_rest_wait_until_a_winner_is_known() -> None:
    plan = assign.ArmPlan(control_percent=0, variants=(("A", 1), ("B", 1)), test_percent=25)
    arms = [assign.arm_for(plan, seed="s", profile_id=pid) for pid in range(8_000)]
    assert 0.72 < arms.count(assign.WAITING) / len(arms) < 0.78
    decided = assign.ArmPlan(0, (("A", 1), ("B", 1)), test_percent=25, winner="B")
    again = [assign.arm_for(decided, seed="s", profile_id=pid) for pid in range(8_000)]
    # the test group keeps its arm; everyone who waited gets the winner
    assert all(x == y for x, y in zip(arms, again, strict=True) if x != assign.WAITING)
    assert all(y == "B" for x, y in zip(arms, again, strict=True) if x == assign.WAITING)


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775
    first = stats.wilson(81, 263)
    assert (round(first.low, 4), round(first.high, 4)) == (0.2553, 0.3662)
    empty = stats.wilson(0, 10)
    assert (round(empty.low, 4), round(empty.high, 4)) == (0.0, 0.2775)


def test_newcombe_difference_interval_matches_the_paper() -> None:
    # Newcombe (1998), method 10, example (a): 56/70 - 48/80 -> 0.0524 to 0.3339
    interval = stats.difference_interval(56, 70, 48, 80)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0524, 0.3339)


def test_z_test_and_winner_by_significance() -> None:
    assert stats.z_test(50, 1000, 50, 1000) == pytest.approx(1.0)
    p = stats.z_test(80, 1000, 50, 1000)
    assert 0.005 < p < 0.01  # z = 2.72
    from scipy.stats import norm  # the reference the module no longer imports

    for k1, n1, k2, n2 in ((80, 1000, 50, 1000), (3, 40, 9, 41), (500, 800, 20, 30)):
        pooled = (k1 + k2) / (n1 + n2)
        z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        assert stats.z_test(k1, n1, k2, n2) == pytest.approx(2 * norm.sf(abs(z)), rel=1e-12, abs=1e-300)
    winner = stats.pick_winner([stats.Arm("A", 1000, 50), stats.Arm("B", 1000, 80)])
    assert winner.key == "B" and winner.significant and winner.p_value == pytest.approx(p)
    close = stats.pick_winner([stats.Arm("A", 100, 10), stats.Arm("B", 100, 11)])
    assert close.key == "B" and not close.significant


def test_thompson_sampling_prefers_the_clearly_better_arm() -> None:
    probs = stats.prob_best([10, 40, 12], [500, 500, 500], seed=3)
    assert sum(probs) == pytest.approx(1.0)
    assert probs[1] > 0.99
    winner = stats.pick_winner([stats.Arm("A", 500, 10), stats.Arm("B", 500, 40)], method="thompson", seed=3)
    assert winner.key == "B" and winner.probability_best is not None and winner.probability_best > 0.99


def test_next_local_time_in_the_recipients_zone() -> None:
    london, tokyo = ZoneInfo("Europe/London"), ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert schedule.next_local(now, time(9, 0), london) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert schedule.next_local(now, time(11, 0), london) == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    # 09:00 in Tokyo (UTC+9) is 00:00 UTC: the next one is tomorrow's
    assert schedule.next_local(now, time(9, 0), tokyo) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    # summer time: 09:00 in London on 1 July is 08:00 UTC
    july = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)
    assert schedule.next_local(july, time(9, 0), london) == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)), st.integers(0, 23))
def test_next_local_is_never_in_the_past_and_reads_the_wall_time(moment: datetime, hour: int) -> None:
    tz = ZoneInfo("Europe/London")
    after = moment.replace(tzinfo=UTC)
    found = schedule.next_local(after, time(hour, 30), tz)
    assert found >= after
    assert (found - after).total_seconds() < 2 * 86400
    local = found.astimezone(tz)
    assert (local.hour, local.minute) == (hour, 30) or local.hour == hour + 1  # a skipped hour moves forward


def test_throttling_spreads_messages_over_the_hour() -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert schedule.throttled(start, 0, 120) == start
    assert schedule.throttled(start, 60, 120) == datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    assert schedule.throttled(start, 60, None) == start


def test_date_occurrences_with_offsets_and_anniversaries() -> None:
    today = date(2026, 11, 23)
    # 30 days before the contract ends
    assert occurrence(date(2026, 12, 23), offset_days=-30, anniversary=False, local_today=today) is not None
    assert occurrence(date(2026, 12, 24), offset_days=-30, anniversary=False, local_today=today) is None
    # on the birthday, any year; 29 February falls on 28 February in other years
    assert occurrence(date(1990, 11, 23), offset_days=0, anniversary=True, local_today=today) is not None
    assert occurrence(date(1990, 11, 22), offset_days=0, anniversary=True, local_today=today) is None
    feb28 = date(2027, 2, 28)
    assert occurrence(date(2000, 2, 29), offset_days=0, anniversary=True, local_today=feb28) is not None
    assert (
        occurrence(date(2000, 2, 29), offset_days=0, anniversary=True, local_today=date(2028, 2, 28)) is None
    )
    assert (
        occurrence(date(2000, 2, 29), offset_days=0, anniversary=True, local_today=date(2028, 2, 29))
        is not None
    )
