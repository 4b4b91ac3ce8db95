"""Items: most and least interacted items, per type, and one item's trend."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import streamlit as st

from pulse.ingest.aggregate import type_column
from pulse.ingest.funnel import ranked_by_conversion
from pulse.ingest.trending import (
    RISING_BASELINE_MINUTES,
    RISING_MIN_EVENTS,
    RISING_MINUTES,
    WINDOWS,
    rank,
    rising,
)
from pulse.store import reads, trending
from pulse.store.leaders import TOP_K
from pulse.store.schema import Entity
from streamlit_app import charts
from streamlit_app.connection import fetch, settings
from streamlit_app.controls import current_view, live
from streamlit_app.lookup import entity_card

st.title("Items")
view = current_view()
n = st.slider("How many", 5, 50, 10, key="items_n")
window = st.segmented_control(
    "Trending over the last",
    WINDOWS,
    default=15,
    format_func=lambda minutes: f"{minutes} min",
    key="trending_window",
)
lookup = st.text_input("Look up an item", placeholder="e.g. i42", key="item_lookup").strip()


def render(now: datetime) -> None:
    # One read of the leader board serves the top chart and the conversion ranking.
    busiest = fetch(reads.ranked, Entity.ITEMS, "item_id", max(n, TOP_K))
    top = busiest.head(n)
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
    _trending(now, n, window or WINDOWS[1])
    st.dataframe(top, hide_index=True, key="top_items_table")
    _by_conversion(busiest, n)
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


def _trending(now: datetime, n: int, minutes: int) -> None:
    """The busiest items of the last minutes, and those rising against their own recent rate,
    from the per-minute boards (one small document a minute)."""
    reach = max(minutes, RISING_MINUTES + RISING_BASELINE_MINUTES)
    boards = fetch(trending.boards, now - timedelta(minutes=reach - 1), now)
    ranking = rank(boards[-minutes:], n, trending.BOARD_K)
    left, right = st.columns(2)
    with left:
        frame = pl.DataFrame(
            [(t.item_id, t.events) for t in ranking.items],
            schema={"item_id": pl.String, "events": pl.Int64},
            orient="row",
        )
        st.plotly_chart(
            charts.trending(frame, f"Trending: top {n} items, last {minutes} minutes"),
            key="trending",
        )
        if ranking.exact:
            st.caption("Exact: these are the busiest items of the window, with their counts.")
        else:
            st.caption(
                "Not provably exact (traffic this flat spreads over more items than a minute's "
                f"board of {trending.BOARD_K} holds): counts are at least these."
            )
    with right:
        recent = boards[-RISING_MINUTES:]
        before = boards[-(RISING_MINUTES + RISING_BASELINE_MINUTES) : -RISING_MINUTES]
        risers = rising(recent, before, n, RISING_MIN_EVENTS, trending.BOARD_K)
        st.subheader("Rising")
        st.dataframe(
            pl.DataFrame(
                risers,
                schema={"item_id": pl.String, "events": pl.Int64, "vs usual": pl.Float64},
                orient="row",
            ),
            hide_index=True,
            key="rising_table",
            column_config={"vs usual": st.column_config.NumberColumn(format="%.1f x")},
        )
        st.caption(
            f"Items with at least {RISING_MIN_EVENTS} interactions in the last "
            f"{RISING_MINUTES} minutes, by how many times their own rate over the "
            f"{RISING_BASELINE_MINUTES} minutes before, at its most: an item missing from a "
            "minute's board counts as if it had as many as the board's last."
        )


def _by_conversion(busiest: pl.DataFrame, n: int) -> None:
    """The busiest items (the leader board's TOP_K candidates, not every item) ranked by
    conversion."""
    steps, least = settings().funnel_steps, settings().funnel.min_events
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
