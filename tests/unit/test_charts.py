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
        charts.per_minute_by_type(frame, ["view"]),
    ):
        trace = figure.data[0]
        assert list(trace.y) == [5, 6, None, 8], figure.layout.title.text
        assert not getattr(trace, "connectgaps", False)  # scatter lines break at None


def test_minutes_are_not_invented_beyond_the_data() -> None:
    assert charts.every_minute(_minutes([2], [1])).height == 1
    assert charts.every_minute(_minutes([0, 1], [1, 2])).height == 2


def test_every_figure_keeps_the_users_zoom_across_refreshes() -> None:
    frame = _minutes([0, 1], [1, 2])
    lag = pl.DataFrame({"partition": [0], "lag": [3]})
    for figure in (charts.timeline(frame, "t"), charts.lag_bars(lag)):
        assert figure.layout.uirevision == "pulse"
