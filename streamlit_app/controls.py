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
RANGES = {
    "15m": ("last 15 minutes", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "6h": ("last 6 hours", timedelta(hours=6)),
    "24h": ("last 24 hours", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
    "1y": ("last year", timedelta(days=365)),
}
"""Time ranges by the name the URL carries (?range=6h)."""
DEFAULT_RANGE = "1h"
_VIEW = "pulse_view"  # session state: the View every page reads


@dataclass(frozen=True)
class View:
    """What the user chose in the sidebar."""

    refresh_seconds: int | None
    """None when paused."""
    window: timedelta
    types: list[str]

    def since(self, now: datetime) -> datetime:
        return now - self.window

    @property
    def label(self) -> str:
        """The time range as the sidebar names it ('last hour')."""
        return next((label for label, span in RANGES.values() if span == self.window), "range")


def sidebar() -> View:
    """Refresh interval and pause, time range, interaction types: built once, by the
    entrypoint (app.py), so a choice survives page changes; mirrored in the URL
    (?refresh=5&paused=1&range=6h&types=view&types=click) so a view can be shared."""
    configured = settings()
    known = list(configured.generator.interaction_types)
    default = configured.dashboard.refresh_seconds
    choices = sorted({*REFRESH_CHOICES, default})
    _seed_from_url(choices, default, known)
    with st.sidebar:
        st.header("Live view")
        refresh = st.select_slider("Refresh every", choices, format_func=_seconds, key="refresh")
        paused = st.toggle("Pause", key="paused")
        window = st.selectbox(
            "Time range", list(RANGES), format_func=lambda name: RANGES[name][0], key="range"
        )
        types = st.multiselect("Interaction types", known, key="types")
    st.query_params.from_dict(
        {"refresh": str(refresh), "range": window, "types": types}
        | ({"paused": "1"} if paused else {})
    )
    view = View(
        refresh_seconds=None if paused else refresh,
        window=RANGES[window][1],
        types=types or known,
    )
    st.session_state[_VIEW] = view
    return view


def current_view() -> View:
    """The sidebar's choices, for a page (app.py builds the sidebar before running it)."""
    view: View = st.session_state[_VIEW]
    return view


def _seed_from_url(choices: list[int], default: int, known: list[str]) -> None:
    """A session's first choices come from the URL where it names valid ones."""
    state, url = st.session_state, st.query_params
    if "refresh" not in state:
        wanted = url.get("refresh", "")
        state["refresh"] = int(wanted) if wanted.isdigit() and int(wanted) in choices else default
    if "paused" not in state:
        state["paused"] = url.get("paused") == "1"
    if "range" not in state:
        state["range"] = url.get("range") if url.get("range") in RANGES else DEFAULT_RANGE
    if "types" not in state:
        state["types"] = [kind for kind in url.get_all("types") if kind in known] or known


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
