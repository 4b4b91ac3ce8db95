"""Sidebar controls shared by every page, and the live-refresh wrapper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import streamlit as st
from pymongo import uri_parser
from pymongo.errors import PyMongoError

from streamlit_app.connection import settings

REFRESH_CHOICES = (1, 2, 5, 10, 30)
"""Seconds offered besides PULSE_DASHBOARD_REFRESH_SECONDS (the default choice)."""
RANGE_CHOICES = {
    "last 15 minutes": timedelta(minutes=15),
    "last hour": timedelta(hours=1),
    "last 6 hours": timedelta(hours=6),
    "last 24 hours": timedelta(hours=24),
}


@dataclass(frozen=True)
class View:
    """What the user chose in the sidebar."""

    refresh_seconds: int | None
    """None when paused."""
    window: timedelta
    types: list[str]

    def since(self, now: datetime) -> datetime:
        return now - self.window


def sidebar() -> View:
    """Refresh interval and pause, time range, interaction types."""
    configured = settings()
    known = list(configured.generator.interaction_types)
    default = configured.dashboard.refresh_seconds
    choices = sorted({*REFRESH_CHOICES, default})
    with st.sidebar:
        st.header("Live view")
        refresh = st.select_slider(
            "Refresh every", choices, value=default, format_func=_seconds, key="refresh"
        )
        paused = st.toggle("Pause", key="paused")
        window = st.selectbox("Time range", list(RANGE_CHOICES), index=1, key="window")
        types = st.multiselect("Interaction types", known, default=known, key="types")
    return View(
        refresh_seconds=None if paused else refresh,
        window=RANGE_CHOICES[window],
        types=types or known,
    )


def _seconds(value: int) -> str:
    return f"{value} s"


def _servers() -> str:
    """Hosts of the MongoDB URI, without credentials or options."""
    nodes = uri_parser.parse_uri(settings().mongo.uri.get_secret_value())["nodelist"]
    return ", ".join(f"{host}:{port}" for host, port in nodes)


def live(view: View, render: Callable[[datetime], None]) -> None:
    """Run `render(now)` now and again every refresh interval, surviving database outages."""

    def body() -> None:
        now = datetime.now(UTC)
        try:
            render(now)
        except PyMongoError as exc:
            st.error(
                f"MongoDB at {_servers()} is unreachable ({type(exc).__name__}). "
                f"Retrying every {view.refresh_seconds or '(paused)'} s; the page recovers by "
                "itself when the database is back.",
                icon=":material/error:",
            )
        if view.refresh_seconds is None:
            st.caption(f"Paused at {now:%H:%M:%S} UTC.")
        else:
            st.caption(f"Updated {now:%H:%M:%S} UTC, every {view.refresh_seconds} s.")

    st.fragment(body, run_every=view.refresh_seconds)()
