"""Funnel: how interactions move from step to step (PULSE_FUNNEL_STEPS), in the chosen time
range and since the start, and conversion over time. Every figure is exact."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import streamlit as st

from pulse.ingest.funnel import step_counts, steps_frame, with_conversion
from pulse.store import reads
from pulse.store.schema import MINUTE
from streamlit_app import charts
from streamlit_app.connection import fetch, settings
from streamlit_app.controls import current_view, live

st.title("Funnel")
view = current_view()
steps = settings().funnel_steps


def render(now: datetime) -> None:
    figures = fetch(reads.totals)
    if figures is None or figures.events == 0:
        st.info("No events yet: nothing has been aggregated.", icon=":material/hourglass_empty:")
        return
    period = reads.period_for(view.window)
    if period == MINUTE:
        counts = fetch(reads.minutes, view.since(now), now, False)
    else:
        counts = fetch(reads.periods, period, view.since(now), now)
    window = view.label
    left, right = st.columns(2)
    with left:
        in_window = steps_frame(step_counts(counts, steps), steps)
        st.plotly_chart(charts.funnel(in_window, f"Funnel, {window}"), key="funnel_window")
        _table(in_window)
    with right:
        overall = steps_frame(figures.types, steps)
        st.plotly_chart(charts.funnel(overall, "Funnel since the start"), key="funnel_all")
        _table(overall)
    st.caption(
        f"Exact counts of each step's events (from the per-{period} and global documents). "
        "Conversion divides events, not users: a user who views twice and buys once converts "
        "50%."
    )
    if counts.height:
        st.plotly_chart(
            charts.conversion(
                with_conversion(counts, steps),
                f"{steps[-1]} per {steps[0]}, per {period} ({window})",
                period,
            ),
            key="conversion",
        )


def _table(frame: pl.DataFrame) -> None:
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "from_previous": st.column_config.NumberColumn("from step before", format="percent"),
            "from_first": st.column_config.NumberColumn(f"from {steps[0]}", format="percent"),
        },
    )


live(view, render)
