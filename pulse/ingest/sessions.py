"""Users' sessions: runs of a user's events with no gap longer than the idle time (pure).

A session starts with a user's event more than the idle time (PULSE_SESSIONS_IDLE_MINUTES)
after the user's latest event, and ends when the idle time has passed since its latest event
with no other: it **ends at its latest event plus the idle time**. Its length is its latest
event's time less its first's; a session of one event (a bounce) has length 0.

A user's events are taken in the order their partition holds them (producers key events by
user, so one partition holds a user's events in the order they were sent). An event older
than the user's latest (a **late event**) is counted as one more event of the user's current
session: it starts no session, splits none, and moves no session's start, end or length.
So the figures do not depend on how records were grouped into batches or flushes, and a
replay of the same records gives the same figures.

The figures are kept per minute (`MinuteChanges`): sessions started, by the minute of their
first event; and sessions ended, their events, their total length and their bounces, by the
minute each ends in. A session still open has its figures in the minute it would end in if no
event came: when one does, `advance` moves them to its new end. The figures of a minute that
has passed are final; those of minutes to come are the open sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import polars as pl

from pulse.ingest.aggregate import MINUTE_MS


@dataclass(frozen=True)
class SessionFigures:
    """Session figures over some minutes (a sum of their documents)."""

    started: int = 0
    ended: int = 0
    events: int = 0
    length_ms: int = 0
    bounces: int = 0

    @property
    def average_length_s(self) -> float | None:
        """Average length of the sessions that ended, in seconds."""
        return self.length_ms / self.ended / 1000 if self.ended else None

    @property
    def events_per_session(self) -> float | None:
        return self.events / self.ended if self.ended else None

    @property
    def bounce_rate(self) -> float | None:
        """Share of the sessions that ended with one event only."""
        return self.bounces / self.ended if self.ended else None


FIELDS = tuple(field.name for field in fields(SessionFigures))
"""A period's session figures, in the order `MinuteChanges` keeps them."""
STARTED, ENDED, EVENTS, LENGTH_MS, BOUNCES = range(len(FIELDS))

MinuteChanges = dict[int, list[int]]
"""Minute (its start in ms / MINUTE_MS) -> changes of its FIELDS."""


@dataclass(frozen=True)
class Session:
    """A user's session as far as its events go: its first and latest event, and how many."""

    start_ms: int
    last_ms: int
    events: int


@dataclass(frozen=True)
class UserSessions:
    """What Pulse keeps of a user's sessions: how many began, and the latest one."""

    count: int = 0
    current: Session | None = None


def advance(
    state: UserSessions, times: Iterable[int], idle_ms: int, changes: MinuteChanges
) -> UserSessions:
    """The user's sessions after its events at `times` (ms, in the order their partition
    holds them); adds what changes per minute to `changes`."""
    count = state.count
    current = state.current
    if current is not None:  # its figures move to where it ends now
        _add_ended(changes, current.start_ms, current.last_ms, current.events, idle_ms, -1)
        start, last, events = current.start_ms, current.last_ms, current.events
    else:
        start = last = events = -1
    for moment in times:
        if events < 0 or moment - last > idle_ms:
            if events > 0:
                _add_ended(changes, start, last, events, idle_ms, 1)
            start, last, events = moment, moment, 1
            count += 1
            _figures(changes, moment // MINUTE_MS)[STARTED] += 1
        else:
            events += 1
            last = max(last, moment)
    if events < 0:
        return state
    _add_ended(changes, start, last, events, idle_ms, 1)
    return UserSessions(count, Session(start, last, events))


def ends_at(session: Session, idle_ms: int) -> int:
    """When `session` ends (ms) if no event follows."""
    return session.last_ms + idle_ms


def _add_ended(
    changes: MinuteChanges, start: int, last: int, events: int, idle_ms: int, sign: int
) -> None:
    figures = _figures(changes, (last + idle_ms) // MINUTE_MS)
    figures[ENDED] += sign
    figures[EVENTS] += sign * events
    figures[LENGTH_MS] += sign * (last - start)
    if events == 1:
        figures[BOUNCES] += sign


def _figures(changes: MinuteChanges, minute: int) -> list[int]:
    figures = changes.get(minute)
    if figures is None:
        figures = changes[minute] = [0] * len(FIELDS)
    return figures


def nonzero(changes: MinuteChanges) -> MinuteChanges:
    """The minutes whose figures change (a session extended within its end minute changes
    only some, and one left as it was none)."""
    return {minute: figures for minute, figures in changes.items() if any(figures)}


def with_rates(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame of session figures per period (FIELDS as columns) with, of the sessions that
    ended in each period, their average length in seconds, events per session and bounce
    rate (null where none ended)."""
    ended = pl.when(pl.col("ended") > 0).then(pl.col("ended"))
    return frame.with_columns(
        (pl.col("length_ms") / ended / 1000).alias("average_length_s"),
        (pl.col("events") / ended).alias("events_per_session"),
        (pl.col("bounces") / ended).alias("bounce_rate"),
    )
