"""Plotly figures for the dashboard (pure: frames in, figures out)."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from pulse.store.schema import DAY, HOUR, MINUTE

TYPE_COLOURS = {
    "view": "#4C78A8",
    "click": "#F58518",
    "add_to_cart": "#54A24B",
    "purchase": "#E45756",
}
_LAYOUT = {
    "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    "legend": {"orientation": "h"},
    # The same revision on every refresh: Plotly keeps the user's zoom, pan and hidden series.
    "uirevision": "pulse",
}


_EVERY = {MINUTE: "1m", HOUR: "1h", DAY: "1d"}


def every_period(frame: pl.DataFrame, period: str = MINUTE) -> pl.DataFrame:
    """The frame with a row for each period (its column, `minute`, `hour` or `day`) from its
    first to its last: a period without a document gets nulls, which Plotly draws as a gap
    instead of a line across it."""
    if frame.height < 2:
        return frame
    return frame.sort(period).upsample(time_column=period, every=_EVERY[period])


def _types(frame: pl.DataFrame, types: list[str]) -> list[str]:
    return [kind for kind in types if f"types.{kind}" in frame.columns]


def per_period_by_type(frame: pl.DataFrame, types: list[str], period: str = MINUTE) -> go.Figure:
    """Stacked bars: interactions per minute, hour or day, one colour per type."""
    frame = every_period(frame, period)
    figure = go.Figure()
    for kind in _types(frame, types):
        figure.add_bar(
            x=frame[period].to_list(),
            y=frame[f"types.{kind}"].to_list(),
            name=kind,
            marker_color=TYPE_COLOURS.get(kind),
        )
    figure.update_layout(
        barmode="stack",
        title=f"Interactions per {period} (event time, UTC)",
        xaxis_title=period,
        yaxis_title="interactions",
        **_LAYOUT,
    )
    return figure


def active_per_minute(frame: pl.DataFrame) -> go.Figure:
    """Lines: estimated distinct users and items active per minute."""
    frame = every_period(frame)
    figure = go.Figure()
    for column, label in (("active_users", "active users"), ("active_items", "active items")):
        if column in frame.columns:
            figure.add_scatter(
                x=frame["minute"].to_list(),
                y=frame[column].to_list(),
                name=label,
                mode="lines+markers",
            )
    figure.update_layout(
        title="Active users and items per minute (HyperLogLog, ±3%)",
        xaxis_title="minute",
        yaxis_title="distinct",
        **_LAYOUT,
    )
    return figure


def ranked_bars(frame: pl.DataFrame, key: str, types: list[str], title: str) -> go.Figure:
    """Horizontal stacked bars of the ranked entities, per type, largest on top."""
    figure = go.Figure()
    labels = frame[key].to_list()
    for kind in _types(frame, types):
        figure.add_bar(
            y=labels,
            x=frame[f"types.{kind}"].to_list(),
            name=kind,
            orientation="h",
            marker_color=TYPE_COLOURS.get(kind),
        )
    figure.update_layout(
        barmode="stack",
        title=title,
        xaxis_title="interactions",
        yaxis={"autorange": "reversed", "title": key.replace("_", " ")},
        height=max(300, 26 * len(labels) + 120),
        **_LAYOUT,
    )
    return figure


def timeline(frame: pl.DataFrame, title: str, period: str = MINUTE) -> go.Figure:
    """A single series over minutes or hours (the frame's column named after the period)."""
    frame = every_period(frame, period)
    figure = go.Figure()
    figure.add_scatter(x=frame[period].to_list(), y=frame["total"].to_list(), mode="lines+markers")
    figure.update_layout(title=title, xaxis_title=period, yaxis_title="interactions", **_LAYOUT)
    return figure


def funnel(frame: pl.DataFrame, title: str) -> go.Figure:
    """The funnel's steps (pulse/ingest/funnel.py:steps_frame), each with its share of the
    first step."""
    figure = go.Figure(
        go.Funnel(
            y=frame["step"].to_list(),
            x=frame["count"].to_list(),
            textinfo="value+percent initial",
            marker={"color": [TYPE_COLOURS.get(step, "#72B7B2") for step in frame["step"]]},
        )
    )
    figure.update_layout(title=title, **_LAYOUT)
    return figure


def conversion(frame: pl.DataFrame, title: str, period: str = MINUTE) -> go.Figure:
    """Conversion (the frame's `conversion` column) per period; a period whose first step
    counted nothing is a gap."""
    frame = every_period(frame, period)
    figure = go.Figure()
    figure.add_scatter(
        x=frame[period].to_list(), y=frame["conversion"].to_list(), mode="lines+markers"
    )
    figure.update_layout(
        title=title, xaxis_title=period, yaxis_title="conversion", yaxis_tickformat=".1%", **_LAYOUT
    )
    return figure


def trending(frame: pl.DataFrame, title: str) -> go.Figure:
    """Horizontal bars of items' interactions over a window (`item_id`, `events`), most on
    top."""
    figure = go.Figure(
        go.Bar(
            y=frame["item_id"].to_list(),
            x=frame["events"].to_list(),
            orientation="h",
            marker_color="#4C78A8",
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title="interactions",
        yaxis={"autorange": "reversed", "title": "item id"},
        height=max(300, 26 * frame.height + 120),
        **_LAYOUT,
    )
    return figure


def lines(
    frame: pl.DataFrame,
    series: dict[str, str],
    title: str,
    period: str = MINUTE,
    *,
    unit: str = "",
    tickformat: str | None = None,
) -> go.Figure:
    """One line per column of `series` (column -> label) over minutes, hours or days."""
    frame = every_period(frame, period)
    figure = go.Figure()
    for column, label in series.items():
        figure.add_scatter(
            x=frame[period].to_list(), y=frame[column].to_list(), name=label, mode="lines+markers"
        )
    figure.update_layout(
        title=title, xaxis_title=period, yaxis_title=unit, yaxis_tickformat=tickformat, **_LAYOUT
    )
    return figure


def activity_histogram(frame: pl.DataFrame) -> go.Figure:
    """Users by number of interactions, in power-of-two bins."""
    labels = [
        str(start) if start == end else f"{start}-{end}"
        for start, end in zip(frame["from"].to_list(), frame["to"].to_list(), strict=True)
    ]
    figure = go.Figure(go.Bar(x=labels, y=frame["users"].to_list(), marker_color="#4C78A8"))
    figure.update_layout(
        title="Users by number of interactions",
        xaxis_title="interactions per user",
        yaxis_title="users",
        **_LAYOUT,
    )
    return figure


def lag_bars(frame: pl.DataFrame) -> go.Figure:
    """Records waiting per partition."""
    figure = go.Figure(
        go.Bar(x=[f"p{p}" for p in frame["partition"].to_list()], y=frame["lag"].to_list())
    )
    figure.update_layout(
        title="Consumer lag per partition",
        xaxis_title="partition",
        yaxis_title="records",
        **_LAYOUT,
    )
    return figure


def batch_durations(frame: pl.DataFrame) -> go.Figure:
    """Each micro-batch's write time, coloured by status."""
    figure = go.Figure()
    for status in frame["status"].unique().sort().to_list():
        part = frame.filter(pl.col("status") == status)
        figure.add_scatter(
            x=part["started_at"].to_list(),
            y=part["write_seconds"].to_list(),
            mode="markers",
            name=status,
            text=part["batch"].to_list(),
        )
    figure.update_layout(
        title="Micro-batches: write time", xaxis_title="started", yaxis_title="seconds", **_LAYOUT
    )
    return figure
