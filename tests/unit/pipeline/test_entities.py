"""The entity tier's memory and backlog (pure): what waits for a flush, and when it is due."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from pulse.ingest.batch import OffsetRange, batch_id, entity_flush_id, ranges_of, without_topic
from pulse.pipeline.entities import EntityBuffer, Flush, backlog, covering, within


def _events(partition: int, offsets: range) -> pl.DataFrame:
    return pl.DataFrame(
        {"partition": [partition] * len(offsets), "offset": list(offsets)},
        schema={"partition": pl.Int32, "offset": pl.Int64},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batch_ids_name_their_ranges() -> None:
    ranges = [OffsetRange(3, 40, 80), OffsetRange(0, 100, 199)]
    assert ranges_of(batch_id("interactions", ranges)) == sorted(ranges, key=lambda r: r.partition)
    assert without_topic(batch_id("interactions", ranges)) == "p0:100-199,p3:40-80"
    assert without_topic(entity_flush_id("a.b-c", ranges)) == "entities/p0:100-199,p3:40-80"
    assert ranges_of(entity_flush_id("a.b-c", ranges)) == ranges_of(batch_id("x", ranges))


def test_covering_spans_each_partition_once() -> None:
    spans = [OffsetRange(0, 10, 19), OffsetRange(1, 5, 9), OffsetRange(0, 20, 24)]
    assert covering(spans) == [OffsetRange(0, 10, 24), OffsetRange(1, 5, 9)]


def test_within_keeps_only_events_inside_the_ranges() -> None:
    events = pl.concat([_events(0, range(0, 10)), _events(1, range(0, 10))])
    kept = within(events, [OffsetRange(0, 3, 4), OffsetRange(1, 9, 9)])
    assert kept.rows() == [(0, 3), (0, 4), (1, 9)]


def test_a_buffer_is_due_after_its_seconds_or_its_events() -> None:
    clock = Clock()
    buffer = EntityBuffer(seconds=5.0, max_events=25, clock=clock)
    assert not buffer.due() and buffer.take() is None
    buffer.add("t/p0:0-9", [OffsetRange(0, 0, 9)], _events(0, range(10)))
    clock.now += 4.9
    assert not buffer.due()
    clock.now += 0.1
    assert buffer.due()
    buffer.clear()
    buffer.add("t/p0:10-39", [OffsetRange(0, 10, 39)], _events(0, range(10, 40)))
    assert buffer.due()  # 30 events waiting, more than 25, however little time passed


def test_a_batch_added_twice_is_flushed_once_and_a_flush_covers_its_batches() -> None:
    buffer = EntityBuffer(seconds=60.0, max_events=1_000, clock=Clock())
    first = _events(0, range(0, 10))
    buffer.add("t/p0:0-9,p1:0-4", [OffsetRange(0, 0, 9), OffsetRange(1, 0, 4)], first)
    buffer.add("t/p0:0-9,p1:0-4", [OffsetRange(0, 0, 9), OffsetRange(1, 0, 4)], first)  # retry
    buffer.add("t/p0:10-14", [OffsetRange(0, 10, 14)], _events(0, range(10, 15)))
    flush = buffer.take()
    assert flush is not None
    assert flush.batches == ["t/p0:0-9,p1:0-4", "t/p0:10-14"]
    assert flush.ranges == [OffsetRange(0, 0, 14), OffsetRange(1, 0, 4)]
    assert_frame_equal(flush.events, _events(0, range(15)))
    again = buffer.take()  # kept until cleared: a failed flush is retried the same
    assert again is not None and (again.batches, again.ranges) == (flush.batches, flush.ranges)


def test_the_backlog_is_the_listed_batches_no_flush_holds_yet() -> None:
    progress = {
        # p0: flushed up to offset 19; the listed 0-9 batch is older, the others wait
        0: (20, ["t/p0:0-9", "t/p0:20-29,p1:5-9", "t/p0:30-39", "t/p0:30-39"]),
        # p1: the shared batch waits here too, and one of its own
        1: (5, ["t/p0:20-29,p1:5-9", "t/p1:10-12"]),
        2: (7, []),  # nothing waits
    }
    owed, batches = backlog(progress)
    assert owed == [OffsetRange(0, 20, 39), OffsetRange(1, 5, 12)]
    assert batches == ["t/p0:20-29,p1:5-9", "t/p0:30-39", "t/p1:10-12"]
    assert backlog({0: (40, ["t/p0:30-39"])}) == ([], [])


def test_released_partitions_leave_the_buffer_and_a_spanning_batch_keeps_the_rest() -> None:
    buffer = EntityBuffer(seconds=60, max_events=1_000)
    only_given_up = [OffsetRange(1, 0, 4)]
    spanning = [OffsetRange(0, 0, 4), OffsetRange(1, 5, 9)]
    buffer.add(batch_id("t", only_given_up), only_given_up, _events(1, range(0, 5)))
    both = pl.concat([_events(0, range(0, 5)), _events(1, range(5, 10))])
    buffer.add(batch_id("t", spanning), spanning, both)
    buffer.release({1})
    pending = buffer.take()
    assert pending is not None
    assert pending.batches == [batch_id("t", spanning)]
    assert pending.ranges == [OffsetRange(0, 0, 4)]
    assert_frame_equal(pending.events, _events(0, range(0, 5)))
    buffer.release({0})
    assert buffer.empty and buffer.take() is None


def test_a_flush_without_some_partitions_keeps_only_the_batches_that_touch_the_rest() -> None:
    spanning = [OffsetRange(0, 0, 4), OffsetRange(1, 0, 4)]
    one = [OffsetRange(1, 5, 9)]
    events = pl.concat([_events(0, range(0, 5)), _events(1, range(0, 10))])
    flush = Flush(
        ranges=covering(spanning + one),
        batches=[batch_id("t", spanning), batch_id("t", one)],
        events=events,
        replay=True,
    )
    kept = flush.without({1})
    assert kept is not None
    assert kept.batches == [batch_id("t", spanning)] and kept.ranges == [OffsetRange(0, 0, 4)]
    assert_frame_equal(kept.events, _events(0, range(0, 5)))
    assert kept.replay
    assert flush.without({0, 1}) is None
