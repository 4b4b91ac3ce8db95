"""Active users over days, from daily HyperLogLog sketches (pure).

DAU, WAU and MAU are the distinct users of the last 1, 7 and 30 UTC days, today included
(today counts so far). Unions of the days' sketches, so a user active on many days counts
once; each an estimate within about 3% (pulse/ingest/sketches.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pulse.ingest import sketches

DAY_FORMAT = "%Y-%m-%d"
WEEK_DAYS = 7
MONTH_DAYS = 30
"""The days MAU covers."""
DAYS_KEPT = MONTH_DAYS + 1
"""Daily sketches are kept this many days, today included (pulse/store/retention.py): a
month back from yesterday, for the stickiness of complete days too."""


@dataclass(frozen=True)
class ActiveUsers:
    """Estimated distinct users of the last day, week and month, up to `today`."""

    today: date
    day: float
    week: float
    month: float
    average_day: float
    """The mean of each day's distinct users over the month's days that have any."""

    @property
    def stickiness(self) -> float:
        """Average DAU over MAU: the share of a month's users active on a given day."""
        return self.average_day / self.month if self.month else 0.0


def oldest_day_kept(today: date) -> date:
    """The first of the DAYS_KEPT days up to `today`: no daily sketch is kept, or written,
    for a day before it."""
    return today - timedelta(days=DAYS_KEPT - 1)


def day_keys(today: date, days: int) -> list[str]:
    """The keys of the `days` UTC days up to `today`, oldest first: '2026-12-02'."""
    return [(today - timedelta(days=n)).strftime(DAY_FORMAT) for n in reversed(range(days))]


@dataclass(frozen=True)
class DaysBefore:
    """The days before `today` of the month, rolled up: what MAU, WAU and stickiness need
    of them, so a reader of today reads one sketch more, not thirty."""

    today: date
    week: dict[int, int]
    """The union of the 6 days before today (WAU with today's)."""
    month: dict[int, int]
    """The union of the 29 days before today (MAU with today's)."""
    daily: list[float]
    """Each of those days' distinct users, for the days that have any."""


def days_before(days: Mapping[str, Mapping[int, int]], today: date) -> DaysBefore:
    """Roll up the daily sketches (`day key` -> registers) of the month before `today`."""
    yesterday = today - timedelta(days=1)
    month = [days.get(k, {}) for k in day_keys(yesterday, MONTH_DAYS - 1)]
    return DaysBefore(
        today=today,
        week=sketches.union(days.get(k, {}) for k in day_keys(yesterday, WEEK_DAYS - 1)),
        month=sketches.union(month),
        daily=[sketches.estimate(sketch) for sketch in month if sketch],
    )


def with_today(before: DaysBefore, today: Mapping[int, int]) -> ActiveUsers:
    """The figures from the rolled-up days before and today's sketch."""
    daily = before.daily + ([sketches.estimate(today)] if today else [])
    return ActiveUsers(
        today=before.today,
        day=sketches.estimate(today),
        week=sketches.estimate(sketches.union([before.week, today])),
        month=sketches.estimate(sketches.union([before.month, today])),
        average_day=sum(daily) / len(daily) if daily else 0.0,
    )


def active_users(days: Mapping[str, Mapping[int, int]], today: date) -> ActiveUsers:
    """The figures from the daily sketches (`day key` -> registers; missing days had none)."""
    return with_today(days_before(days, today), days.get(today.strftime(DAY_FORMAT), {}))
