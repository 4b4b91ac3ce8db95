"""Items: most and least interacted items, per type, and one item's trend."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from pulse.store import reads
from pulse.store.schema import Entity
from streamlit_app import charts
from streamlit_app.connection import fetch
from streamlit_app.controls import current_view, live
from streamlit_app.lookup import entity_card

st.title("Items")
view = current_view()
n = st.slider("How many", 5, 50, 10, key="items_n")
lookup = st.text_input("Look up an item", placeholder="e.g. i42", key="item_lookup").strip()


def render(now: datetime) -> None:
    top = fetch(reads.ranked, Entity.ITEMS, "item_id", n)
    if top.height == 0:
        st.info("No items yet: nothing has been aggregated.", icon=":material/hourglass_empty:")
        return
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            charts.ranked_bars(top, "item_id", view.types, f"Top {n} items (max interactions)"),
            key="top_items",
        )
    with right:
        bottom = fetch(reads.ranked, Entity.ITEMS, "item_id", n, True)
        st.plotly_chart(
            charts.ranked_bars(
                bottom, "item_id", view.types, f"Bottom {n} items (min interactions)"
            ),
            key="bottom_items",
        )
    st.dataframe(top, hide_index=True, key="top_items_table")
    if lookup and entity_card(Entity.ITEMS, "item_id", "item", lookup) is not None:
        since = max(view.since(now), now - reads.ITEM_TREND_WINDOW)
        period = reads.item_period_for(now - since)
        trend = fetch(reads.item_trend, lookup, period, since, now)
        st.plotly_chart(
            charts.timeline(trend, f"{lookup}: interactions per {period}", period),
            key="item_trend",
        )
        if view.since(now) < since:
            st.caption(
                f"An item's trend covers at most the last {reads.ITEM_TREND_WINDOW.days} days."
            )


live(view, render)
