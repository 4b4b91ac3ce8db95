"""The drain loop against an in-memory source: what it applies, and when it stops."""

from __future__ import annotations

import threading

import orjson
import polars as pl

from pulse.ingest.batch import MicroBatch
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.drain import drain
from tests.fakes import ListSource, written


def _batch(first: int, n: int) -> MicroBatch:
    values = [orjson.dumps({"n": i}) for i in range(n)]
    return MicroBatch.from_columns(
        "t", [0] * n, list(range(first, first + n)), [0] * n, [None] * n, values
    )


def _report(batch: MicroBatch, seconds: float) -> BatchReport:
    return written(batch.batch_id, batch.ranges(), pl.DataFrame({"n": range(batch.size)}))


def test_drain_applies_every_batch_in_order_and_stops_when_caught_up() -> None:
    source = ListSource([_batch(0, 5), _batch(5, 3)])
    applied: list[str] = []

    def apply(batch: MicroBatch, seconds: float) -> BatchReport:
        applied.append(batch.batch_id)
        return _report(batch, seconds)

    summary = drain(source, apply, time_budget=60)
    assert applied == ["t/p0:0-4", "t/p0:5-7"]
    assert (summary.batches, summary.records, summary.caught_up) == (2, 8, True)
    assert summary.lag == {0: 0}


def test_drain_stops_between_batches_when_asked() -> None:
    stop = threading.Event()
    source = ListSource([_batch(0, 5), _batch(5, 5), _batch(10, 5)])

    def apply(batch: MicroBatch, seconds: float) -> BatchReport:
        stop.set()  # asked to stop while the first batch is written: it is finished first
        return _report(batch, seconds)

    summary = drain(source, apply, time_budget=60, stop_when_caught_up=False, stop=stop)
    assert summary.batches == 1
    assert len(source.batches) == 2  # nothing else was read
    assert not summary.caught_up


def test_a_drain_flushes_what_waits_at_the_end_unless_it_hands_over_to_a_successor() -> None:
    def apply(batch: MicroBatch, seconds: float) -> BatchReport:
        return _report(batch, seconds)

    alone = ListSource([_batch(0, 5)])
    drain(alone, apply, time_budget=60)
    assert (alone.flush_calls, alone.hand_overs) == (1, 0)
    handing_over = ListSource([_batch(0, 5)])
    drain(handing_over, apply, time_budget=60, hand_over=True)
    assert (handing_over.flush_calls, handing_over.hand_overs) == (0, 1)


def test_a_drain_handing_over_starts_no_flush_in_its_last_quiet_seconds() -> None:
    def apply(batch: MicroBatch, seconds: float) -> BatchReport:
        return _report(batch, seconds)

    handing_over = ListSource([])
    # Each poll takes a second of the budget; the successor joins in the last three.
    drain(
        handing_over,
        apply,
        time_budget=10,
        stop_when_caught_up=False,
        hand_over=True,
        quiet_seconds=3,
        clock=lambda: handing_over.polls,
    )
    assert handing_over.polls == 10
    assert handing_over.held_at_poll == 8  # polls 8, 9 and 10 are in the quiet time
    alone = ListSource([])
    drain(
        alone,
        apply,
        time_budget=10,
        stop_when_caught_up=False,
        quiet_seconds=3,  # no successor: nothing to keep quiet for
        clock=lambda: alone.polls,
    )
    assert alone.held_at_poll is None
