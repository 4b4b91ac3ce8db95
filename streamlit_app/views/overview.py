"""Overview: the headline figures and interactions per minute."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from streamlit_app import charts, queries
from streamlit_app.connection import fetch
from streamlit_app.controls import live, sidebar

st.title("Pulse: live user interactions")
view = sidebar()


def render(now: datetime) -> None:
    figures = fetch(queries.totals)
    if figures is None or figures.events == 0:
        st.info(
            "No events aggregated yet. `make run` starts the generator and the consumer; the "
            "first figures appear within a minute.",
            icon=":material/hourglass_empty:",
        )
        return
    freshness = figures.freshness(now)
    columns = st.columns(6)
    columns[0].metric("Total interactions", f"{figures.events:,}")
    columns[1].metric("Distinct users", f"{figures.users:,}")
    columns[2].metric("Avg interactions / user", f"{figures.average_per_user:,.2f}")
    columns[3].metric("Events last minute", f"{fetch(queries.last_full_minute, now):,}")
    columns[4].metric(
        "Freshness",
        f"{freshness.total_seconds():,.1f} s" if freshness else "n/a",
        help="Now minus the newest aggregated event time.",
    )
    columns[5].metric("Dead-lettered", f"{figures.dead_lettered:,}")

    per_minute = fetch(queries.minutes, view.since(now), now)
    if per_minute.height == 0:
        st.info("No events in this time range.")
        return
    st.plotly_chart(charts.per_minute_by_type(per_minute, view.types), key="per_minute")
    st.plotly_chart(charts.active_per_minute(per_minute), key="active")


live(view, render)
