"""Pipeline health: consumer lag, micro-batches, failures, dead letters."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import streamlit as st

from pulse.store import reads
from pulse.store.schema import REFUSED_FLUSHES, UNFINISHED
from streamlit_app import charts
from streamlit_app.connection import fetch
from streamlit_app.controls import current_view, live
from streamlit_app.lag import lag_metric

st.title("Pipeline health")
view = current_view()


def render(now: datetime) -> None:
    batches = fetch(reads.ledger, 200)
    columns = st.columns(5)
    lag = lag_metric(columns[0], warn=True)
    recent = batches.filter(pl.col("started_at") >= view.since(now)) if batches.height else batches
    columns[1].metric("Batches in range", f"{recent.height:,}")
    unfinished = batches.filter(pl.col("status").is_in(UNFINISHED)) if batches.height else batches
    columns[2].metric("Unfinished or failed", f"{unfinished.height:,}")
    reasons = fetch(reads.dead_letter_reasons)
    columns[3].metric(
        "Dead letters",
        f"{reasons['count'].sum() if reasons.height else 0:,}",
        help="Records dead-lettered since counting began; the newest are listed below",
    )
    figures = fetch(reads.totals) or reads.Totals()
    refused = fetch(reads.counter, REFUSED_FLUSHES)
    columns[4].metric(
        "Isolated records",
        f"{figures.isolated:,}",
        help="Records dead-lettered because processing or writing them failed; entity flushes "
        f"left out for the same reason: {refused:,}",
    )
    aside = (
        batches.filter(~pl.col("status").is_in([*UNFINISHED, "applied"]))
        if batches.height
        else batches
    )

    if lag is not None and lag.partitions.height:
        st.plotly_chart(charts.lag_bars(lag.partitions), key="lag")
    if recent.height:
        st.plotly_chart(charts.batch_durations(recent), key="durations")
    if unfinished.height:
        st.subheader("Failed or unfinished batches")
        st.caption("`pulse trigger retry` re-applies them over their exact offsets.")
        st.dataframe(unfinished.select("batch", "status", "attempts", "error"), key="failed")
    if aside.height:
        st.subheader("Set aside")
        st.caption(
            "Batches written in parts (split), read by a member that had lost their partitions "
            "(stale), entity flushes left out (refused), and records Kafka no longer held (lost)."
        )
        st.dataframe(aside.select("batch", "status", "error"), key="aside")
    if reasons.height:
        st.subheader("Dead letters")
        left, right = st.columns([1, 3])
        left.dataframe(reasons, hide_index=True, key="reasons")
        right.dataframe(fetch(reads.dead_letter_samples, 20), hide_index=True, key="samples")
    if batches.height == 0:
        st.info("No micro-batches yet.", icon=":material/hourglass_empty:")


live(view, render)
