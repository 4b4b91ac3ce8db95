"""Rate control: burst sizes, totals, schedule, and lag reporting with a fake clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pulse.generate.pacing import Pacer, RatePlan


class FakeClock:
    """A clock that moves only when slept on or told to."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_event_total_ends_with_a_partial_burst() -> None:
    plan = RatePlan(batch_size=1_000, interval_seconds=0.5, events=2_500)
    assert plan.total_bursts == 3
    assert [plan.burst_size(i) for i in range(3)] == [1_000, 1_000, 500]
    assert plan.total_events == 2_500


def test_rate_times_duration_is_what_gets_sent() -> None:
    plan = RatePlan(batch_size=250, interval_seconds=0.25, duration_seconds=30)
    assert plan.requested_rate == 1_000
    assert plan.total_events == 30_000  # R * T


def test_bursts_are_spaced_as_asked() -> None:
    clock = FakeClock()
    pacer = Pacer(RatePlan(batch_size=10, interval_seconds=2, bursts=4), clock, clock.sleep)
    slots = []
    for slot in pacer:
        slots.append(slot)
        clock.now += 0.5  # each burst takes half a second to send
    assert [slot.elapsed for slot in slots] == [0, 2, 4, 6]
    assert clock.sleeps == [1.5, 1.5, 1.5]
    assert [slot.first_seq for slot in slots] == [0, 10, 20, 30]
    assert all(slot.behind == 0 for slot in slots)


def test_a_slow_burst_is_reported_behind_and_not_slept_for() -> None:
    clock = FakeClock()
    pacer = Pacer(RatePlan(batch_size=10, interval_seconds=1, bursts=3), clock, clock.sleep)
    behind = []
    for slot in pacer:
        behind.append(slot.behind)
        clock.now += 2.5  # slower than the interval: the broker is the limit
    assert behind == [0, 1.5, 3.0]
    assert clock.sleeps == []


def test_back_to_back_bursts_stop_when_the_duration_is_spent() -> None:
    clock = FakeClock()
    pacer = Pacer(
        RatePlan(batch_size=10, interval_seconds=0, duration_seconds=3), clock, clock.sleep
    )
    count = 0
    for _ in pacer:
        count += 1
        clock.now += 0.4
    assert count == 8  # bursts start at 0, 0.4, ..., 2.8


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"interval_seconds": -1}, "interval_seconds"),
        ({"speed_multiplier": 0}, "speed_multiplier"),
        ({"events": 10, "bursts": 2}, "only one of"),
    ],
)
def test_bad_rates_are_refused(plan: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RatePlan(**plan)


@pytest.mark.parametrize(
    "plan",
    [
        RatePlan(batch_size=10, interval_seconds=1.0, speed_multiplier=3.0, duration_seconds=1_800),
        RatePlan(batch_size=10, interval_seconds=1.0, speed_multiplier=3.0),  # no known end
        RatePlan(batch_size=10, interval_seconds=1.0, speed_multiplier=1.0),
    ],
    ids=["30 minutes at 3x", "unbounded at 3x", "real time"],
)
def test_simulated_time_runs_faster_but_never_ahead_of_the_clock(plan: RatePlan) -> None:
    start_ms = 1_795_737_600_000
    elapsed = [n * 60.0 for n in range(0, 181)]  # three hours of wall time, by the minute
    origin_ms = start_ms - plan.head_start_ms()
    times = [plan.simulated_ms(origin_ms, start_ms, s) for s in elapsed]
    assert all(t <= start_ms + s * 1_000 for t, s in zip(times, elapsed, strict=True))
    assert times == sorted(times)
    if plan.speed_multiplier > 1:  # faster than the clock while it has a head start
        assert times[1] - times[0] == 3 * 60_000
        assert times[0] == start_ms - plan.head_start_ms() < start_ms
    if plan.duration_seconds:  # ends at the present, exactly
        end = plan.simulated_ms(origin_ms, start_ms, plan.duration_seconds)
        assert end == start_ms + 1_800_000
