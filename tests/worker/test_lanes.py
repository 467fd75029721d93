"""The running worker's lanes: a tick that waits never holds up another, work in one lane wakes the others,
``notify_work`` wakes them from outside, and stopping stops them all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rapport.config import Settings
from rapport.runtime import Runtime, build_runtime
from rapport.worker.runner import HandlerRegistry, Worker, notify_work


def _runtime(db_url: str, poll: float) -> Runtime:
    return build_runtime(Settings(database_url=db_url, worker_poll_seconds=poll), secret_key="x" * 32)


class Counter:
    """A tick that records when it ran and reports ``result`` work."""

    def __init__(self, result: int = 0) -> None:
        self.calls: list[float] = []
        self.result = result

    def __call__(self) -> int:
        self.calls.append(time.monotonic())
        return self.result


def _run_until(runtime: Runtime, ticks: list[Callable[[], int]], done: Callable[[], bool]) -> None:
    """Run a worker with ``ticks`` in its lanes until ``done()`` (at most 5 s), then stop it and the runtime."""
    worker = Worker(runtime, HandlerRegistry())
    for tick in ticks:
        worker.add_tick(tick)
    worker.start_thread()
    try:
        deadline = time.monotonic() + 5
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop_thread()
        runtime.close()


def _lane_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rapport-worker")]


def test_a_waiting_tick_does_not_hold_up_the_others(db_url: str) -> None:
    runtime = _runtime(db_url, poll=0.01)
    slow_calls: list[float] = []

    def slow() -> int:  # e.g. a send waiting on a provider's replies
        slow_calls.append(time.monotonic())
        time.sleep(0.5)
        return 1

    fast = Counter()
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(slow)
    worker.add_tick(fast)
    worker.start_thread()
    try:
        time.sleep(0.4)
        during_first_slow_call = len(fast.calls)
    finally:
        worker.stop_thread()
        runtime.close()
    assert len(slow_calls) == 1
    assert during_first_slow_call >= 5  # one after the other, it would have run once at most


def test_work_in_one_lane_wakes_the_others_before_their_poll(db_url: str) -> None:
    runtime = _runtime(db_url, poll=30.0)
    consumer = Counter()
    produced: list[float] = []

    def producer() -> int:
        if produced:
            return 0
        deadline = time.monotonic() + 5
        while not consumer.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the consumer found nothing and sleeps its 30 s poll now
        produced.append(time.monotonic())
        return 1

    _run_until(runtime, [producer, consumer], lambda: len(consumer.calls) >= 2)
    assert produced and len(consumer.calls) >= 2
    assert 0 <= consumer.calls[1] - produced[0] < 1.0


def test_notify_work_wakes_an_idle_lane_and_stop_ends_every_lane(db_url: str) -> None:
    runtime = _runtime(db_url, poll=30.0)
    idle = Counter()
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(idle)
    notify_work(runtime)  # nothing running yet: a no-op
    worker.start_thread()
    try:
        deadline = time.monotonic() + 5
        while not idle.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(_lane_threads()) >= 2  # the jobs lane and the tick's
        time.sleep(0.1)
        woken_at = time.monotonic()
        notify_work(runtime)
        while len(idle.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        started = time.monotonic()
        worker.stop_thread()
        stopped_in = time.monotonic() - started
        runtime.close()
    assert len(idle.calls) == 2 and idle.calls[1] - woken_at < 1.0
    assert stopped_in < 5.0  # a 30 s poll does not delay the stop
    assert _lane_threads() == []


class Listening(Counter):
    """A tick woken by notifications on its ``wake_channel``."""

    wake_channel = "test_channel"


def test_notify_work_on_a_channel_wakes_only_the_lanes_of_that_channel(db_url: str) -> None:
    runtime = _runtime(db_url, poll=30.0)
    other, listening = Counter(), Listening()
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(other)
    worker.add_tick(listening)
    worker.start_thread()
    try:
        deadline = time.monotonic() + 5
        while not (other.calls and listening.calls) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.8)  # PostgreSQL's listener wakes its lanes once when its LISTEN takes effect
        seen_other, seen_listening = len(other.calls), len(listening.calls)
        notify_work(runtime, "test_channel")
        while len(listening.calls) == seen_listening and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert len(listening.calls) == seen_listening + 1
        assert len(other.calls) == seen_other  # the other lane sleeps its 30 s poll
        notify_work(runtime, "nobody_listens")
        notify_work(runtime)  # no channel: every wakeable lane
        while len(other.calls) == seen_other and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(other.calls) == seen_other + 1
    finally:
        worker.stop_thread()
        runtime.close()


def test_run_once_still_runs_everything_in_turn(db_url: str) -> None:
    runtime = _runtime(db_url, poll=30.0)
    order: list[str] = []

    def tick(name: str, work: int) -> Callable[[], int]:
        def run() -> int:
            order.append(name)
            return work

        return run

    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(tick("a", 1))
    worker.add_tick(tick("b", 2))
    assert worker.run_once() == 3
    assert order == ["a", "b"]
    runtime.close()


def test_a_clock_driven_tick_keeps_to_its_idle_poll(db_url: str) -> None:
    runtime = _runtime(db_url, poll=0.01)

    class Schedule(Counter):
        wakeable = False
        idle_poll_seconds = 0.3

    schedule, busy = Schedule(), Counter(result=1)
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(busy)  # always finds work: wakes the wakeable lanes all the time
    worker.add_tick(schedule)
    worker.start_thread()
    try:
        time.sleep(0.5)
    finally:
        worker.stop_thread()
        runtime.close()
    assert len(busy.calls) > 20
    assert 1 <= len(schedule.calls) <= 2  # neither every 10 ms nor woken by the busy lane


class _CountingJobs(Worker):
    """A worker whose jobs lane records its rounds (and finds nothing)."""

    jobs_rounds: list[float]

    def run_jobs(self) -> int:
        self.jobs_rounds.append(time.monotonic())
        return 0


def test_ticks_work_does_not_wake_the_jobs_lane_but_notify_work_does(db_url: str) -> None:
    # Ticks (the event processor, the deliverer) create no jobs: waking the jobs lane after each of their
    # rounds only had it look for jobs in vain, a hundred times a second under load.
    runtime = _runtime(db_url, poll=30.0)
    busy = Counter(result=1)  # did work every round (it stops below)
    worker = _CountingJobs(runtime, HandlerRegistry())
    worker.jobs_rounds = []
    worker.add_tick(busy)
    worker.start_thread()
    try:
        deadline = time.monotonic() + 5
        while (len(busy.calls) < 50 or not worker.jobs_rounds) and time.monotonic() < deadline:
            time.sleep(0.01)
        busy.result = 0
        time.sleep(0.2)
        after_busy_work = len(worker.jobs_rounds)
        notify_work(runtime)  # an edge committed a job
        deadline = time.monotonic() + 5
        while len(worker.jobs_rounds) == after_busy_work and time.monotonic() < deadline:
            time.sleep(0.01)
        woken = len(worker.jobs_rounds)
    finally:
        worker.stop_thread()
        runtime.close()
    assert len(busy.calls) >= 50
    assert after_busy_work == 1  # its first round only: 50 rounds of tick work woke it never
    assert woken == 2


def test_a_tick_whose_start_fails_still_runs(db_url: str) -> None:
    """``on_start`` prepares a tick before the lanes run (the deliverer starts its render helpers); when it
    fails, the worker logs it and runs the tick all the same."""

    class Fragile(Counter):
        def on_start(self) -> None:
            raise OSError("no process could start")

    tick = Fragile()
    _run_until(_runtime(db_url, poll=0.01), [tick], lambda: len(tick.calls) >= 3)
    assert len(tick.calls) >= 3
