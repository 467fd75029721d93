"""The time budget counts the rendering thread's CPU time, so waiting for the CPU does not fail a render."""

from __future__ import annotations

import time

import pytest

from rapport.personalize import RenderBudget
from rapport.personalize.limits import RenderTimeLimitError


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_time_spent_waiting_is_not_charged() -> None:
    budget = RenderBudget(0.05, hard_factor=10)
    time.sleep(0.12)  # wall clock passes the budget, CPU time does not
    before = time.perf_counter()
    budget.check()
    assert budget.wall_deadline > before


def test_cpu_time_is_charged() -> None:
    budget = RenderBudget(0.05, hard_factor=1000)
    _spin(0.06)
    with pytest.raises(RenderTimeLimitError):
        budget.check()


def test_the_hard_wall_clock_cap_holds_even_when_waiting() -> None:
    budget = RenderBudget(0.02, hard_factor=3)
    time.sleep(0.08)
    with pytest.raises(RenderTimeLimitError):
        budget.check()


def test_credit_gives_time_back() -> None:
    # A generous hard cap: on a loaded machine 60 ms of CPU can take far longer than 0.5 s of wall time.
    budget = RenderBudget(0.05, hard_factor=1000)
    _spin(0.06)
    budget.credit(0.05)  # e.g. the first render for a locale loading babel's data
    budget.check()


def test_an_unlimited_budget_never_runs_out() -> None:
    RenderBudget.unlimited().check()
