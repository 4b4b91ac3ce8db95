"""DAU, WAU and MAU from daily sketches agree with the true distinct counts."""

from __future__ import annotations

import random
import statistics
from datetime import date

import pytest

from pulse.ingest import sketches
from pulse.ingest.active_users import MONTH_DAYS, WEEK_DAYS, active_users, day_keys

TODAY = date(2026, 12, 7)


def _activity(users: int, seed: int) -> dict[str, set[str]]:
    """Each user active on one to four of the last 30 days (a few days in the week)."""
    rng = random.Random(seed)
    keys = day_keys(TODAY, MONTH_DAYS)
    days: dict[str, set[str]] = {key: set() for key in keys}
    for n in range(users):
        for key in rng.sample(keys, rng.randint(1, 4)):
            days[key].add(f"user-{seed}-{n}")
    return days


@pytest.mark.parametrize("users", [1_000, 5_000, 50_000])
def test_dau_wau_and_mau_are_within_two_percent_of_the_truth_on_average(users: int) -> None:
    errors: dict[str, list[float]] = {"day": [], "week": [], "month": []}
    for seed in range(10):
        days = _activity(users, seed)
        figures = active_users({k: sketches.registers(v) for k, v in days.items()}, TODAY)
        truth = {
            "day": len(days[day_keys(TODAY, 1)[0]]),
            "week": len(set().union(*(days[k] for k in day_keys(TODAY, WEEK_DAYS)))),
            "month": users,
        }
        for name, true in truth.items():
            errors[name].append(getattr(figures, name) / true - 1)
    for name, values in errors.items():
        assert abs(statistics.mean(values)) < 0.02, f"{name}: {statistics.mean(values):+.2%}"


def test_stickiness_is_the_average_day_over_the_month() -> None:
    # Every user active on every day: each day's users are the month's.
    registers = sketches.registers(f"u{n}" for n in range(2_000))
    figures = active_users({k: registers for k in day_keys(TODAY, MONTH_DAYS)}, TODAY)
    assert figures.stickiness == pytest.approx(1.0)
    assert figures.day == figures.week == figures.month


def test_days_without_users_are_neither_counted_nor_averaged() -> None:
    only = {day_keys(TODAY, 3)[0]: sketches.registers(f"u{n}" for n in range(100))}
    figures = active_users(only, TODAY)
    assert figures.day == 0.0  # that day was two days ago
    assert figures.week == figures.month == figures.average_day
    assert active_users({}, TODAY).stickiness == 0.0
