"""Items: most and least interacted items, per type, and one item's trend."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from pulse.events import ID_PATTERN, is_id
from pulse.store import reads
from pulse.store.schema import Entity
from streamlit_app import charts
from streamlit_app.connection import fetch
from streamlit_app.controls import current_view, live

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
    if lookup:
        item = fetch(reads.entity, Entity.ITEMS, "item_id", lookup)
        if item is None:
            st.warning(
                f"No item {lookup!r}."
                if is_id(lookup)
                else f"{lookup!r} is not an id: ids are {ID_PATTERN.strip('^$')}."
            )
            return
        st.subheader(f"Item {lookup}")
        columns = st.columns(3)
        columns[0].metric("Interactions", f"{item['total']:,}")
        columns[1].metric("First seen", f"{item['first_seen']:%Y-%m-%d %H:%M:%S}")
        columns[2].metric("Last seen", f"{item['last_seen']:%Y-%m-%d %H:%M:%S}")
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
