"""Sessions: users' runs of events with no gap longer than PULSE_SESSIONS_IDLE_MINUTES, in the
chosen time range and since the start. Every figure is exact (pulse/ingest/sessions.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import streamlit as st

from pulse.ingest.sessions import SessionFigures, with_rates
from pulse.store import reads, session_figures
from streamlit_app import charts
from streamlit_app.connection import fetch, settings
from streamlit_app.controls import current_view, live

st.title("Sessions")
view = current_view()
idle = settings().sessions.idle
# How far ahead of now a session still open can end: its idle time after an event that may
# itself be ahead of the clock.
reach = idle + timedelta(seconds=settings().consumer.max_event_lead_seconds)


def render(now: datetime) -> None:
    overall = fetch(session_figures.all_sessions)
    if overall.started == 0:
        st.info("No sessions yet: nothing has been aggregated.", icon=":material/hourglass_empty:")
        return
    period = reads.period_for(view.window)
    frame = fetch(session_figures.sessions_by_period, period, view.since(now), now)
    window = view.label
    in_range = session_figures.summed(frame)
    _cards(fetch(session_figures.open_sessions, now, reach), in_range, window)
    rates = with_rates(frame)
    st.plotly_chart(
        charts.lines(
            rates,
            {"started": "started", "ended": "ended"},
            f"Sessions started and ended per {period} ({window})",
            period,
            unit="sessions",
        ),
        key="started_ended",
    )
    if in_range.ended:
        _ended_charts(rates, period)
    else:
        st.info(
            f"No session has ended in the {window} yet: a session ends "
            f"{_minutes(idle)} minutes after its user's latest event "
            "(PULSE_SESSIONS_IDLE_MINUTES), and its length, events and bounce are known then. "
            "The charts of ended sessions appear with the first.",
            icon=":material/timelapse:",
        )
    st.caption(
        f"A session ends {_minutes(idle)} minutes after its user's latest event "
        "(PULSE_SESSIONS_IDLE_MINUTES) and is counted as ended then; lengths, events per "
        "session and bounces (sessions of one event) are of the sessions that ended. An event "
        f"older than its user's latest counts in the user's current session. Since the start: "
        f"{overall.started:,} sessions, {overall.events_per_session or 0:,.1f} events each."
    )


def _ended_charts(rates: pl.DataFrame, period: str) -> None:
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            charts.lines(
                rates,
                {"average_length_s": "average length"},
                f"Average length of the sessions ending per {period}",
                period,
                unit="seconds",
            ),
            key="length",
        )
    with right:
        st.plotly_chart(
            charts.lines(
                rates,
                {"bounce_rate": "bounce rate"},
                f"Bounce rate of the sessions ending per {period}",
                period,
                tickformat=".0%",
            ),
            key="bounce",
        )


def _minutes(span: timedelta) -> str:
    return f"{span / timedelta(minutes=1):g}"


def _cards(open_now: int, figures: SessionFigures, window: str) -> None:
    ended = f"of the sessions that ended in the {window}; exact (n/a while none has)"
    cards = st.columns(6)
    cards[0].metric(
        "Open now", f"{open_now:,}", help="Sessions whose idle time has not run out; exact."
    )
    cards[1].metric(
        "Started", f"{figures.started:,}", help=f"Sessions begun in the {window}; exact."
    )
    cards[2].metric("Ended", f"{figures.ended:,}", help=f"Sessions ended in the {window}; exact.")
    cards[3].metric(
        "Avg length", _duration(figures.average_length_s), help=f"First to latest event, {ended}."
    )
    cards[4].metric(
        "Events / session", _shown(figures.events_per_session, "{:,.1f}"), help=f"Average {ended}."
    )
    cards[5].metric(
        "Bounce rate",
        _shown(figures.bounce_rate, "{:.1%}"),
        help=f"Share of sessions of one event, {ended}.",
    )


def _shown(value: float | None, form: str) -> str:
    return "n/a" if value is None else form.format(value)


def _duration(seconds: float | None) -> str:
    if seconds is not None and seconds >= 60:
        return _shown(seconds / 60, "{:.1f} min")
    return _shown(seconds, "{:.0f} s")


live(view, render)
