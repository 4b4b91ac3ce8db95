"""A user's figures as one string: what is packed is what is read back."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from pulse.config import TYPE_PATTERN
from pulse.ingest.sessions import Session, UserSessions
from pulse.store.user_figures import UserFigures, pack, stored_total, unpack

MS = st.integers(min_value=0, max_value=253_402_300_799_999)  # up to 9999-12-31
COUNTS = st.integers(min_value=1, max_value=2**62)
TYPES = st.dictionaries(st.from_regex(TYPE_PATTERN, fullmatch=True), COUNTS, max_size=6)


@st.composite
def sessions(draw: st.DrawFn) -> UserSessions:
    if not draw(st.booleans()):
        return UserSessions()  # written before Pulse kept sessions
    start, last = sorted((draw(MS), draw(MS)))
    return UserSessions(draw(COUNTS), Session(start, last, draw(COUNTS)))


@st.composite
def figures(draw: st.DrawFn) -> UserFigures:
    first, last = sorted((draw(MS), draw(MS)))
    return UserFigures(draw(COUNTS), first, last, draw(TYPES), draw(sessions()))


@given(figures())
def test_packed_figures_read_back_the_same(kept: UserFigures) -> None:
    packed = pack(kept)
    assert unpack(packed) == kept
    assert stored_total(packed) == kept.total


@given(figures(), figures(), sessions())
def test_adding_a_flush_adds_counts_and_widens_the_seen_range(
    stored: UserFigures, added: UserFigures, now: UserSessions
) -> None:
    after = unpack(pack(stored.plus(added, now)))
    assert after.sessions == now
    assert after.total == stored.total + added.total
    for name in stored.types.keys() | added.types.keys():
        assert after.types[name] == stored.types.get(name, 0) + added.types.get(name, 0)
    assert after.first_ms == min(stored.first_ms, added.first_ms)
    assert after.last_ms == max(stored.last_ms, added.last_ms)


def test_readers_get_the_document_older_buckets_held() -> None:
    first, last = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    older = {"total": 5, "types": {"view": 3, "click": 2}, "first_seen": first, "last_seen": last}
    assert unpack(older).as_document() == older | {"sessions": 0}
    assert unpack(pack(unpack(older))).as_document() == older | {"sessions": 0}
    assert stored_total(older) == 5


def test_an_older_document_without_seen_times_takes_the_flushs() -> None:
    flushed = UserFigures(1, 1_000, 2_000, {"view": 1})
    after = unpack({"total": 3, "types": {"view": 3}}).plus(flushed, UserSessions())
    assert after == UserFigures(4, 1_000, 2_000, {"view": 4})


def test_a_string_written_before_sessions_reads_as_no_session_yet() -> None:
    assert unpack("4|1000|2000|view=4").sessions == UserSessions()
