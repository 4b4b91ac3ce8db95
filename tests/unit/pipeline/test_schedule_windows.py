"""Windows of scheduled runs: consecutive runs touch end to start, whatever their start-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from pulse.pipeline.schedule_windows import window_of

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_consecutive_windows_touch_end_to_start() -> None:
    windows = [window_of(T0 + timedelta(seconds=60 * k), 60, 15) for k in range(5)]
    assert windows[0].start == T0 + timedelta(seconds=15)
    assert all(a.end == b.start for a, b in pairwise(windows))


def test_a_run_that_starts_early_waits_and_then_works_the_whole_window() -> None:
    window = window_of(T0, 60, 15)
    started = T0 + timedelta(seconds=6)  # flow-run start-up
    assert window.wait_before(started) == 9
    assert window.remaining(started) == 60


def test_a_late_run_works_what_is_left_and_an_overdue_one_nothing() -> None:
    window = window_of(T0, 60, 15)
    assert window.wait_before(T0 + timedelta(seconds=25)) == 0
    assert window.remaining(T0 + timedelta(seconds=25)) == 50
    assert window.remaining(T0 + timedelta(seconds=90)) == 0
    assert window.remaining(T0 + timedelta(hours=1)) == 0
