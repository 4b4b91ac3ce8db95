"""Entity flushes in the background: in order, never two at once, failures kept and retried."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from pulse.ingest.batch import OffsetRange
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.entities import EntityBuffer, Flush, Reread, within
from pulse.pipeline.flusher import EntityFlusher
from tests.fakes import written


class RefusedError(RuntimeError):
    pass


class Writer:
    """Records each flush; can hold one until released, or refuse some."""

    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.writing = 0
        self.most_at_once = 0
        self.refuse: set[int] = set()  # calls (1-based) that fail
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()
        self.began: list[list[OffsetRange]] = []

    def begun(self, ranges: list[OffsetRange]) -> bool:
        return ranges in self.began

    def flush(self, pending: Flush) -> BatchReport:
        self.began.append(pending.ranges)  # as BatchWriter writes its ledger entry first
        with self.lock:
            self.calls += 1
            call = self.calls
            self.writing += 1
            self.most_at_once = max(self.most_at_once, self.writing)
        try:
            self.release.wait(timeout=10)
            if call in self.refuse:
                raise RefusedError(f"flush {call} refused")
            self.written.append(pending.batches)
            return _report(",".join(pending.batches), pending.ranges)
        finally:
            with self.lock:
                self.writing -= 1


def _report(batch_id: str, ranges: list[OffsetRange]) -> BatchReport:
    partitions = [r.partition for r in ranges]
    return written(
        batch_id, ranges, pl.DataFrame({"partition": partitions}, schema={"partition": pl.Int32})
    )


def _batch(first: int) -> BatchReport:
    return _report(f"t/p0:{first}-{first + 9}", [OffsetRange(0, first, first + 9)])


def _flusher(writer: Writer, *, background: bool = True) -> EntityFlusher:
    return EntityFlusher(writer, EntityBuffer(seconds=0, max_events=1_000), background=background)


def test_a_flush_due_while_another_is_written_waits_and_takes_the_batches_since() -> None:
    writer = Writer()
    flusher = _flusher(writer)
    writer.release.clear()  # the first flush is held in the database
    flusher.add(_batch(0))
    flusher.flush_due()
    for first in (10, 20):
        flusher.add(_batch(first))
        flusher.flush_due()  # due, but one is being written: nothing starts
    assert writer.calls == 1
    writer.release.set()
    flusher.flush_all()
    flusher.close()
    assert writer.written == [["t/p0:0-9"], ["t/p0:10-19", "t/p0:20-29"]]
    assert writer.most_at_once == 1
    assert [report.batch_id for report in flusher.done] == ["t/p0:0-9", "t/p0:10-19,t/p0:20-29"]


@pytest.mark.parametrize("background", [True, False])
def test_a_failed_flush_is_raised_once_then_written_before_any_later_one(background: bool) -> None:
    writer = Writer()
    writer.refuse = {1}
    flusher = _flusher(writer, background=background)
    flusher.add(_batch(0))
    with pytest.raises(RefusedError):
        flusher.flush_due()
        flusher.flush_all()  # background: the error surfaces when the flush is collected
    flusher.add(_batch(10))
    flusher.flush_all()
    flusher.close()
    assert writer.written == [["t/p0:0-9"], ["t/p0:10-19"]]


def test_discard_waits_for_the_flush_being_written_and_forgets_the_rest() -> None:
    writer = Writer()
    flusher = _flusher(writer)
    writer.release.clear()
    flusher.add(_batch(0))
    flusher.flush_due()
    flusher.add(_batch(10))  # waits behind the running flush
    stopping = threading.Thread(target=flusher.discard)
    stopping.start()
    writer.release.set()  # the database answers only now
    stopping.join(timeout=10)
    assert not stopping.is_alive()
    assert writer.writing == 0 and writer.written == [["t/p0:0-9"]]
    flusher.flush_all()
    flusher.close()
    assert writer.written == [["t/p0:0-9"]]  # the discarded batch is the next owner's


def test_a_full_buffer_waits_for_the_flush_being_written_before_reading_on() -> None:
    writer = Writer()
    # A batch here holds one valid event: a flush is due at one, the buffer full at two.
    flusher = EntityFlusher(writer, EntityBuffer(seconds=3600, max_events=1), background=True)
    writer.release.clear()  # the database is slow
    flusher.add(_batch(0))
    flusher.flush_due()  # due by size, written in the background
    flusher.add(_batch(10))
    flusher.flush_due()  # one waits, under the bound: the consumer reads on
    assert writer.written == []
    flusher.add(_batch(20))  # two wait: full
    # The database answers a little later; returning before that would leave it unwritten.
    answer = threading.Timer(0.3, writer.release.set)
    answer.start()
    flusher.flush_due()
    assert writer.written[:1] == [["t/p0:0-9"]], "a full buffer did not wait for the flush"
    flusher.flush_all()
    flusher.close()
    answer.join()
    assert writer.written == [["t/p0:0-9"], ["t/p0:10-19", "t/p0:20-29"]]


def _spanning(first: int) -> BatchReport:
    """A batch over partitions 0 and 1 (a member reads several into one batch)."""
    ranges = [OffsetRange(0, first, first + 9), OffsetRange(1, first, first + 9)]
    offsets = list(range(first, first + 10))
    events = pl.DataFrame(
        {"partition": [0] * 10 + [1] * 10, "offset": offsets * 2},
        schema={"partition": pl.Int32, "offset": pl.Int64},
    )
    return written(f"t/p0:{first}-{first + 9},p1:{first}-{first + 9}", ranges, events)


def test_a_release_waits_for_the_flush_being_written_and_forgets_only_the_given_up() -> None:
    writer = Writer()
    flusher = _flusher(writer)
    writer.release.clear()
    flusher.add(_spanning(0))
    flusher.flush_due()  # written now: it outlives nothing of ours
    flusher.add(_spanning(10))  # waits: its partition 1 part goes, its partition 0 part stays
    giving_up = threading.Thread(target=flusher.release, args=({1},))
    giving_up.start()
    giving_up.join(timeout=0.2)
    assert giving_up.is_alive(), "the release did not wait for the flush being written"
    writer.release.set()
    giving_up.join(timeout=10)
    assert not giving_up.is_alive()
    assert writer.written == [["t/p0:0-9,p1:0-9"]]
    flusher.flush_all()
    flusher.close()
    assert writer.written[1:] == [["t/p0:10-19,p1:10-19"]]
    assert flusher.done[1].ranges == [OffsetRange(0, 10, 19)]


@pytest.mark.parametrize("background", [True, False])
def test_a_queued_backlog_is_written_before_anything_buffered(background: bool) -> None:
    writer = Writer()
    flusher = _flusher(writer, background=background)
    backlog = _batch(0)
    flusher.add(_batch(10))
    flusher.queue(Flush(backlog.ranges, [backlog.batch_id], backlog.verdict.events, replay=True))  # type: ignore[union-attr]
    flusher.flush_due()
    flusher.flush_all()
    flusher.close()
    assert writer.written == [["t/p0:0-9"], ["t/p0:10-19"]]
    assert writer.most_at_once == 1


def test_a_release_drops_a_queued_backlog_of_the_given_up_partitions() -> None:
    writer = Writer()
    flusher = _flusher(writer)
    backlog = _batch(0)
    flusher.queue(Flush(backlog.ranges, [backlog.batch_id], backlog.verdict.events, replay=True))  # type: ignore[union-attr]
    flusher.release({0})
    flusher.flush_all()
    flusher.close()
    assert writer.written == []


class Backlog:
    """Reads a backlog back as Kafka would (pulse/pipeline/consumer.py:reread), noting the
    thread and what it was asked for; can fail the first reads."""

    def __init__(self, failures: int = 0) -> None:
        self.asked: list[tuple[list[OffsetRange], list[str], str]] = []
        self.failures = failures

    def read(self, ranges: list[OffsetRange], batches: list[str]) -> Flush:
        self.asked.append((ranges, batches, threading.current_thread().name))
        if self.failures:
            self.failures -= 1
            raise RefusedError("Kafka did not answer")
        events = _spanning(0).verdict.events  # type: ignore[union-attr]
        return Flush(ranges, batches, within(events, ranges), replay=True)


def test_a_queued_reread_is_read_in_the_flush_thread_and_written_before_anything_buffered() -> None:
    writer = Writer()
    backlog = Backlog()
    flusher = _flusher(writer)
    flusher.queue(Reread([OffsetRange(0, 0, 9)], ["t/p0:0-9"], backlog.read))
    flusher.add(_batch(10))
    assert backlog.asked == [], "queueing a re-read read Kafka at once"
    flusher.flush_due()
    flusher.flush_all()
    flusher.close()
    (asked,) = backlog.asked
    assert asked[2].startswith("entity-flush"), f"read in {asked[2]}, not the flush's thread"
    assert writer.written == [["t/p0:0-9"], ["t/p0:10-19"]]


def test_a_release_narrows_a_queued_reread_to_the_partitions_kept() -> None:
    writer = Writer()
    backlog = Backlog()
    flusher = _flusher(writer)
    spanning = "t/p0:0-9,p1:0-9"
    only_p1 = "t/p1:10-19"
    owed = [OffsetRange(0, 0, 9), OffsetRange(1, 0, 19)]
    flusher.queue(Reread(owed, [spanning, only_p1], backlog.read))
    flusher.release({1})
    flusher.flush_all()
    flusher.close()
    # The batch spanning both partitions is still read whole (its verdicts depend on all its
    # records), but only its partition 0 part is owed; the partition 1 batch is not read.
    assert [(ranges, batches) for ranges, batches, _ in backlog.asked] == [
        ([OffsetRange(0, 0, 9)], [spanning])
    ]
    assert flusher.done[0].ranges == [OffsetRange(0, 0, 9)]


def test_a_release_of_every_partition_of_a_queued_reread_drops_it() -> None:
    writer = Writer()
    backlog = Backlog()
    flusher = _flusher(writer)
    flusher.queue(Reread([OffsetRange(0, 0, 9)], ["t/p0:0-9"], backlog.read))
    flusher.release({0})
    flusher.flush_all()
    flusher.close()
    assert backlog.asked == [] and writer.written == []


@pytest.mark.parametrize("background", [True, False])
def test_a_reread_that_fails_is_read_again_before_any_later_flush(background: bool) -> None:
    writer = Writer()
    backlog = Backlog(failures=1)
    flusher = _flusher(writer, background=background)
    flusher.queue(Reread([OffsetRange(0, 0, 9)], ["t/p0:0-9"], backlog.read))
    flusher.add(_batch(10))
    with pytest.raises(RefusedError):
        flusher.flush_due()
        flusher.flush_all()
    flusher.flush_all()
    flusher.close()
    assert len(backlog.asked) == 2
    assert writer.written == [["t/p0:0-9"], ["t/p0:10-19"]]


def test_held_flushes_start_only_when_the_buffer_is_full() -> None:
    writer = Writer()
    # A batch here holds one valid event: a flush is due at one, the buffer full at two.
    flusher = EntityFlusher(writer, EntityBuffer(seconds=0, max_events=1), background=True)
    flusher.hold()  # a successor is about to take the partitions
    flusher.add(_batch(0))
    flusher.flush_due()
    assert writer.calls == 0, "a held flusher started a flush that was only due"
    flusher.add(_batch(10))
    flusher.flush_due()  # full: memory's bound comes first
    flusher.flush_all()
    flusher.close()
    assert writer.written == [["t/p0:0-9", "t/p0:10-19"]]


def test_a_release_keeps_a_failed_flush_that_began_whole_and_writes_it_again_whole() -> None:
    writer = Writer()
    writer.refuse = {1}
    flusher = _flusher(writer)
    flusher.add(_spanning(0))
    flusher.flush_due()
    with pytest.raises(RefusedError):  # collected (and raised) as partition 1 is given up
        flusher.release({1})
    flusher.add(_batch(10))  # partition 0 reads on
    flusher.flush_all()
    flusher.close()
    # The same flush as began (its next owner replays that one too), then partition 0's next.
    assert writer.written == [["t/p0:0-9,p1:0-9"], ["t/p0:10-19"]]
    assert flusher.done[0].ranges == [OffsetRange(0, 0, 9), OffsetRange(1, 0, 9)]


def test_a_release_cuts_a_failed_reread_that_never_began() -> None:
    writer = Writer()
    backlog = Backlog(failures=1)  # Kafka does not answer: nothing was written
    flusher = _flusher(writer)
    spanning = "t/p0:0-9,p1:0-9"
    flusher.queue(Reread([OffsetRange(0, 0, 9), OffsetRange(1, 0, 9)], [spanning], backlog.read))
    flusher.flush_due()
    with pytest.raises(RefusedError):
        flusher.release({1})
    flusher.flush_all()
    flusher.close()
    assert [ranges for ranges, _, _ in backlog.asked] == [
        [OffsetRange(0, 0, 9), OffsetRange(1, 0, 9)],
        [OffsetRange(0, 0, 9)],  # partition 1's part is its next owner's to re-read
    ]
    assert writer.began == [[OffsetRange(0, 0, 9)]]
