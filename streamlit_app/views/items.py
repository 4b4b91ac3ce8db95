"""Items: most and least interacted items, per type, and one item's trend."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from pulse.ingest.aggregate import type_column
from pulse.ingest.funnel import ranked_by_conversion
from pulse.store import reads
from pulse.store.leaders import TOP_K
from pulse.store.schema import Entity
from streamlit_app import charts
from streamlit_app.connection import fetch, settings
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
            charts.ranked_bars(top, "item_id", view.types, f"Top {n} items since the start"),
            key="top_items",
        )
    with right:
        bottom = fetch(reads.ranked, Entity.ITEMS, "item_id", n, True)
        st.plotly_chart(
            charts.ranked_bars(bottom, "item_id", view.types, f"Bottom {n} items since the start"),
            key="bottom_items",
        )
    st.dataframe(top, hide_index=True, key="top_items_table")
    _by_conversion(n)
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


def _by_conversion(n: int) -> None:
    """The busiest items ranked by conversion: the leader board's candidates, so the page
    reads TOP_K items, not every item."""
    steps, least = settings().funnel_steps, settings().funnel.min_events
    busiest = fetch(reads.ranked, Entity.ITEMS, "item_id", TOP_K)
    ranked = ranked_by_conversion(busiest, steps, n, least)
    st.subheader(f"Highest conversion ({steps[-1]} per {steps[0]})")
    st.caption(
        f"Among the {TOP_K} items with the most interactions, those with at "
        f"least {least} {steps[0]} events (PULSE_FUNNEL_MIN_EVENTS); since the start, exact."
    )
    columns = ["item_id", "conversion", type_column(steps[0]), type_column(steps[-1]), "total"]
    st.dataframe(
        ranked.select(c for c in columns if c in ranked.columns),
        hide_index=True,
        key="conversion_table",
        column_config={"conversion": st.column_config.NumberColumn(format="percent")},
    )


live(view, render)
