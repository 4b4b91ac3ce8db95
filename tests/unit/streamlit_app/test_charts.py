"""Dashboard figures: gaps stay gaps, and the user's zoom survives a refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from streamlit_app import charts

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _minutes(offsets: list[int], totals: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "minute": [T0 + timedelta(minutes=m) for m in offsets],
            "total": totals,
            "active_users": totals,
            "types.view": totals,
        }
    ).with_columns(pl.col("minute").dt.cast_time_unit("ms"))


def test_a_missing_minute_is_drawn_as_a_gap_not_a_line_across_it() -> None:
    frame = _minutes([0, 1, 3], [5, 6, 8])
    for figure in (
        charts.timeline(frame, "item"),
        charts.active_per_minute(frame),
        charts.per_period_by_type(frame, ["view"]),
        charts.conversion(frame.with_columns(conversion=pl.col("total")), "conversion"),
    ):
        trace = figure.data[0]
        assert list(trace.y) == [5, 6, None, 8], figure.layout.title.text
        assert not getattr(trace, "connectgaps", False)  # scatter lines break at None


def test_minutes_are_not_invented_beyond_the_data() -> None:
    assert charts.every_period(_minutes([2], [1])).height == 1
    assert charts.every_period(_minutes([0, 1], [1, 2])).height == 2


def test_every_figure_keeps_the_users_zoom_across_refreshes() -> None:
    frame = _minutes([0, 1], [1, 2])
    lag = pl.DataFrame({"partition": [0], "lag": [3]})
    for figure in (charts.timeline(frame, "t"), charts.lag_bars(lag)):
        assert figure.layout.uirevision == "pulse"


def test_hours_and_days_are_drawn_per_hour_and_per_day() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    hours = pl.DataFrame(
        {"hour": [start, start + timedelta(hours=2)], "total": [4, 6], "types.view": [4, 6]}
    ).with_columns(pl.col("hour").dt.cast_time_unit("ms"))
    figure = charts.per_period_by_type(hours, ["view"], "hour")
    assert list(figure.data[0].y) == [4, None, 6]
    assert figure.layout.title.text.startswith("Interactions per hour")


def test_the_funnel_shows_each_steps_count_in_order() -> None:
    steps = pl.DataFrame({"step": ["view", "purchase"], "count": [100, 7]})
    trace = charts.funnel(steps, "funnel").data[0]
    assert (list(trace.y), list(trace.x)) == (["view", "purchase"], [100, 7])
