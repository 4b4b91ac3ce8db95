"""Alerts: active and recent threshold alerts."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from pulse.store import reads
from streamlit_app.connection import fetch
from streamlit_app.controls import current_view, live

st.title("Alerts")
view = current_view()


def render(now: datetime) -> None:
    rejected = fetch(reads.rule_rejections)
    if rejected.height:
        st.warning(
            f"{rejected.height} rule(s) in the `alert_rules` collection do not validate and are "
            "skipped; the other rules and the counting go on.",
            icon=":material/rule:",
        )
        st.dataframe(rejected, hide_index=True, key="rejected_rules")
    recent = fetch(reads.alerts, view.since(now))
    if recent.height == 0:
        st.info("No alerts in this time range.", icon=":material/check_circle:")
        return
    active = recent.filter(recent["state"] == "firing")
    st.metric("Firing now", active.height)
    if active.height:
        st.dataframe(active, hide_index=True, key="firing")
    st.subheader("Recent")
    st.dataframe(recent, hide_index=True, key="recent_alerts")


live(view, render)
