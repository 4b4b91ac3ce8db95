"""Micro-batch identity: ranges and ids do not depend on the order records arrived in."""

from __future__ import annotations

from pulse.ingest.batch import MicroBatch, OffsetRange


def _batch(pairs: list[tuple[int, int]]) -> MicroBatch:
    n = len(pairs)
    return MicroBatch.from_columns(
        "interactions",
        [p for p, _ in pairs],
        [o for _, o in pairs],
        [0] * n,
        [None] * n,
        [b"x"] * n,
    )


def test_ranges_and_id() -> None:
    batch = _batch([(3, 40), (0, 100), (3, 41), (0, 101), (0, 102)])
    assert batch.ranges() == [OffsetRange(0, 100, 102), OffsetRange(3, 40, 41)]
    assert batch.batch_id == "interactions/p0:100-102,p3:40-41"


def test_records_are_ordered_by_partition_and_offset() -> None:
    batch = _batch([(3, 41), (0, 101), (3, 40), (0, 100)])
    assert batch.records.select("partition", "offset").rows() == [
        (0, 100),
        (0, 101),
        (3, 40),
        (3, 41),
    ]
