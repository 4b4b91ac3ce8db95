"""Users: how activity is spread, the most active users, one user."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from pulse.ingest.active_users import ActiveUsers
from pulse.store import active_users, reads
from pulse.store.schema import Entity
from streamlit_app import charts
from streamlit_app.connection import fetch
from streamlit_app.controls import current_view, live
from streamlit_app.lookup import entity_card

st.title("Users")
view = current_view()
n = st.slider("How many", 5, 50, 10, key="users_n")
lookup = st.text_input("Look up a user", placeholder="e.g. u17", key="user_lookup").strip()


def render(now: datetime) -> None:
    figures = fetch(reads.totals)
    if figures is None or figures.users == 0:
        st.info("No users yet: nothing has been aggregated.", icon=":material/hourglass_empty:")
        return
    columns = st.columns(2)
    columns[0].metric("Distinct users", f"{figures.users:,}", help="Since the start; exact.")
    columns[1].metric(
        "Avg interactions / user", f"{figures.average_per_user:,.2f}", help="Since the start."
    )
    active_users_cards(fetch(active_users.active_users, now.date()))
    st.plotly_chart(charts.activity_histogram(reads.user_histogram(figures)), key="histogram")
    top = fetch(reads.ranked, Entity.USERS, "user_id", n)
    st.plotly_chart(
        charts.ranked_bars(top, "user_id", view.types, f"Top {n} users since the start"),
        key="top_users",
    )
    if lookup:
        user = entity_card(Entity.USERS, "user_id", "user", lookup)
        if user is not None:
            st.metric(
                "Sessions",
                f"{user.get('sessions', 0):,}",
                help="Sessions the user began (PULSE_SESSIONS_IDLE_MINUTES apart); exact.",
            )
            st.json({key: value for key, value in user.items() if key.startswith("types.")})


def active_users_cards(active: ActiveUsers) -> None:
    estimated = "estimated from daily HyperLogLog sketches (about ±3%)"
    cards = st.columns(4)
    cards[0].metric("DAU", f"{active.day:,.0f}", help=f"Users of today (UTC) so far; {estimated}.")
    cards[1].metric("WAU", f"{active.week:,.0f}", help=f"Users of the last 7 days; {estimated}.")
    cards[2].metric("MAU", f"{active.month:,.0f}", help=f"Users of the last 30 days; {estimated}.")
    cards[3].metric(
        "Stickiness",
        f"{active.stickiness:.0%}",
        help="Average DAU over MAU: the share of the month's users active on a given day.",
    )
    st.caption(
        f"Active users up to {active.today:%Y-%m-%d} (UTC days, today included): {estimated}."
    )


live(view, render)
