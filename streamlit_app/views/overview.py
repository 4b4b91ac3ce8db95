"""Overview: the headline figures and interactions per minute."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from pulse.store import reads
from pulse.store.schema import MINUTE
from streamlit_app import charts
from streamlit_app.connection import fetch
from streamlit_app.controls import current_view, live
from streamlit_app.lag import lag_metric

st.title("Pulse: live user interactions")
view = current_view()


def render(now: datetime) -> None:
    figures = fetch(reads.totals)
    if figures is None or figures.events == 0:
        st.info(
            "No events aggregated yet. `make run` starts the generator and the consumer; the "
            "first figures appear within a minute.",
            icon=":material/hourglass_empty:",
        )
        return
    since = figures.since_last_event(now)
    columns = st.columns(7)
    exact = "Since the start; exact."
    columns[0].metric("Total interactions", f"{figures.events:,}", help=exact)
    columns[1].metric("Distinct users", f"{figures.users:,}", help=exact)
    columns[2].metric("Avg interactions / user", f"{figures.average_per_user:,.2f}", help=exact)
    columns[3].metric(
        "Events last minute",
        f"{fetch(reads.last_full_minute, now):,}",
        help="The last complete minute of event time; exact.",
    )
    lag_metric(columns[4])
    columns[5].metric(
        "Last event",
        f"{since.total_seconds():,.0f} s ago" if since else "n/a",
        help="Event time of the newest counted event. It grows while nobody produces, even "
        "when the pipeline is fully caught up: see Pipeline lag for that.",
    )
    columns[6].metric(
        "Dead-lettered",
        f"{figures.dead_lettered:,}",
        help="Records refused with a reason, since the start; exact (Pipeline health lists them).",
    )

    period = reads.period_for(view.window)
    if period == MINUTE:
        counts = fetch(reads.minutes, view.since(now), now)
    else:
        counts = fetch(reads.periods, period, view.since(now), now)
    if counts.height == 0:
        st.info("No events in this time range.")
        return
    st.plotly_chart(charts.per_period_by_type(counts, view.types, period), key="per_period")
    if period == MINUTE:
        st.plotly_chart(charts.active_per_minute(counts), key="active")
    else:
        st.caption("Active users and items are estimated per minute: pick 24 hours or less.")


live(view, render)
