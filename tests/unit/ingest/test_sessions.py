"""Users' sessions: the documented rule, late events, and figures that do not depend on how a
user's events were cut into flushes."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from pulse.ingest.sessions import (
    BOUNCES,
    ENDED,
    EVENTS,
    FIELDS,
    LENGTH_MS,
    STARTED,
    MinuteChanges,
    Session,
    SessionFigures,
    UserSessions,
    advance,
    nonzero,
    with_rates,
)

MINUTE = 60_000
IDLE = 30 * MINUTE
T0 = 1_796_083_200_000  # 2026-12-01T00:00Z


def _figures(changes: MinuteChanges) -> dict[int, dict[str, int]]:
    return {
        minute: {name: n for name, n in zip(FIELDS, figures, strict=True) if n}
        for minute, figures in nonzero(changes).items()
    }


def _minute(ms: int) -> int:
    return ms // MINUTE


def test_a_single_event_is_a_bounce_that_ends_the_idle_time_later() -> None:
    changes: MinuteChanges = {}
    after = advance(UserSessions(), [T0 + 5_000], IDLE, changes)
    assert after == UserSessions(1, Session(T0 + 5_000, T0 + 5_000, 1))
    assert _figures(changes) == {
        _minute(T0): {"started": 1},
        _minute(T0 + IDLE): {"ended": 1, "events": 1, "bounces": 1},
    }


def test_a_gap_of_exactly_the_idle_time_goes_on_and_a_longer_one_starts_a_session() -> None:
    changes: MinuteChanges = {}
    times = [T0, T0 + IDLE, T0 + 2 * IDLE + 1]
    after = advance(UserSessions(), times, IDLE, changes)
    assert after == UserSessions(2, Session(T0 + 2 * IDLE + 1, T0 + 2 * IDLE + 1, 1))
    # The first ends in the minute the second starts in.
    first_end = _minute(T0 + 2 * IDLE)
    assert _figures(changes)[first_end] == {
        "started": 1,
        "ended": 1,
        "events": 2,
        "length_ms": IDLE,
    }


def test_an_event_extending_a_session_moves_its_figures_to_its_new_end() -> None:
    first: MinuteChanges = {}
    state = advance(UserSessions(), [T0], IDLE, first)
    second: MinuteChanges = {}
    advance(state, [T0 + 10 * MINUTE], IDLE, second)
    assert _figures(second) == {
        _minute(T0 + IDLE): {"ended": -1, "events": -1, "bounces": -1},
        _minute(T0 + 10 * MINUTE + IDLE): {"ended": 1, "events": 2, "length_ms": 10 * MINUTE},
    }


def test_a_late_event_is_one_more_event_of_the_current_session_and_moves_nothing() -> None:
    state = advance(UserSessions(), [T0 + 50 * MINUTE, T0 + 55 * MINUTE], IDLE, {})
    changes: MinuteChanges = {}
    # Older than the session's start by more than the idle time: still counted in it.
    after = advance(state, [T0], IDLE, changes)
    assert after == UserSessions(1, Session(T0 + 50 * MINUTE, T0 + 55 * MINUTE, 3))
    assert _figures(changes) == {_minute(T0 + 55 * MINUTE + IDLE): {"events": 1}}


def test_no_events_change_nothing() -> None:
    state = UserSessions(4, Session(T0, T0 + MINUTE, 7))
    changes: MinuteChanges = {}
    assert advance(state, [], IDLE, changes) == state
    assert nonzero(changes) == {}


def test_session_figures_are_averages_of_the_sessions_that_ended() -> None:
    figures = SessionFigures(started=4, ended=2, events=6, length_ms=90_000, bounces=1)
    assert figures.average_length_s == 45.0
    assert figures.events_per_session == 3.0
    assert figures.bounce_rate == 0.5
    assert SessionFigures().bounce_rate is None


def test_rates_per_period_are_of_the_sessions_that_ended_in_it() -> None:
    frame = pl.DataFrame(
        {
            "started": [3, 1],
            "ended": [2, 0],
            "events": [5, 0],
            "length_ms": [60_000, 0],
            "bounces": [1, 0],
        }
    )
    rates = with_rates(frame)
    assert rates.row(0, named=True) | {} == {
        "started": 3,
        "ended": 2,
        "events": 5,
        "length_ms": 60_000,
        "bounces": 1,
        "average_length_s": 30.0,
        "events_per_session": 2.5,
        "bounce_rate": 0.5,
    }
    assert rates.select("average_length_s", "events_per_session", "bounce_rate").row(1) == (
        None,
        None,
        None,
    )


# --- against a reference: the rule applied to a user's whole stream at once -------------------

EVENT_TIMES = st.lists(
    st.integers(min_value=0, max_value=4 * 60).map(lambda minutes: T0 + minutes * MINUTE),
    min_size=1,
    max_size=40,
)


def _reference(times: list[int], idle: int) -> list[tuple[int, int, int]]:
    """The user's sessions as (start, latest, events), from the rule in the module's words."""
    sessions: list[list[int]] = []
    latest = None
    for moment in times:
        if latest is None or moment - latest > idle:
            sessions.append([moment, moment, 0])
        sessions[-1][2] += 1
        latest = moment if latest is None else max(latest, moment)
        sessions[-1][1] = max(sessions[-1][1], moment)
    return [(start, last, events) for start, last, events in sessions]


def _reference_figures(times: list[int], idle: int) -> dict[int, Counter[int]]:
    expected: dict[int, Counter[int]] = {}
    for start, last, events in _reference(times, idle):
        expected.setdefault(_minute(start), Counter())[STARTED] += 1
        end = expected.setdefault(_minute(last + idle), Counter())
        end[ENDED] += 1
        end[EVENTS] += events
        end[LENGTH_MS] += last - start
        end[BOUNCES] += events == 1
    return expected


@given(EVENT_TIMES, st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_any_cut_into_flushes_gives_the_sessions_of_the_whole_stream(
    times: list[int], cuts: list[int]
) -> None:
    """Late events included (the times are in any order): flush after flush, the figures
    changed add up to the reference's, and the state is its last session."""
    bounds = sorted({0, len(times), *(min(cut, len(times)) for cut in cuts)})
    state, changes = UserSessions(), MinuteChanges()
    for begin, end in pairwise(bounds):
        state = advance(state, times[begin:end], IDLE, changes)
    sessions = _reference(times, IDLE)
    assert state == UserSessions(len(sessions), Session(*sessions[-1]))
    expected = {
        minute: [counts[index] for index in range(len(FIELDS))]
        for minute, counts in _reference_figures(times, IDLE).items()
    }
    assert nonzero(changes) == nonzero(expected)
