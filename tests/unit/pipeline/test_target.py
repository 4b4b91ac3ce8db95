"""Each kind of batch gets its ledger id, ranges and mode from one constructor."""

from __future__ import annotations

import polars as pl

from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.pipeline.target import REPLAY_PARTITION, Target, flush_fields, marks_by_topic
from pulse.store.writes import DLQ_REPLAY, DLQ_REPLAY_ENTITIES, ENTITY_FLUSH


def _batch() -> MicroBatch:
    return MicroBatch.from_columns("t", [1, 0, 1], [7, 3, 8], [0] * 3, [None] * 3, [b"x"] * 3)


def test_a_polled_batch_is_checked_for_staleness_unless_it_was_polled_just_now() -> None:
    stale_checked, fresh = Target.polled(_batch(), fresh=False), Target.polled(_batch(), fresh=True)
    assert stale_checked.batch_id == "t/p0:3-3,p1:7-8"
    assert stale_checked.ranges == (OffsetRange(0, 3, 3), OffsetRange(1, 7, 8))
    assert (stale_checked.check_stale, fresh.check_stale) == (True, False)
    assert not stale_checked.replay and stale_checked.record_offsets
    assert marks_by_topic(stale_checked.ledger_fields())


def test_a_batch_written_again_keeps_its_watermark_layout_and_is_not_stale_checked() -> None:
    again = Target.again(_batch(), marks_by_topic=False)
    assert again.batch_id == Target.polled(_batch(), fresh=False).batch_id
    assert again.replay and not again.check_stale
    assert "marks" not in again.ledger_fields()
    refused = again.refusing("could not be written (BadValue)")
    assert refused.ledger_fields() == {"refused": "could not be written (BadValue)"}
    assert refused.batch_id == again.batch_id and refused.replay


def test_a_dead_letter_replay_is_numbered_by_its_sequence_and_writes_no_offsets() -> None:
    target = Target.dead_letter_replay("t", 3, ["t:0:5"])
    assert target.batch_id == f"t/{DLQ_REPLAY}:3"
    assert target.ranges == (OffsetRange(REPLAY_PARTITION, 3, 3),)
    assert not (target.record_offsets or target.store_dead_letters or target.check_stale)
    assert target.ledger_fields()["kind"] == DLQ_REPLAY
    assert target.ledger_fields()["dead_letter_ids"] == ["t:0:5"]
    flush = target.entities(pl.DataFrame())
    assert flush.sequenced and flush.replay and flush.batches == [target.batch_id]
    assert flush_fields(flush)["kind"] == DLQ_REPLAY_ENTITIES


def test_a_kafka_flush_is_recorded_as_an_entity_flush_of_its_batches() -> None:
    flush = Target.polled(_batch(), fresh=True).entities(pl.DataFrame())
    assert not flush.sequenced
    assert flush_fields(flush) == {
        "kind": ENTITY_FLUSH,
        "batches": ["t/p0:3-3,p1:7-8"],
        "marks": "topic",
    }
