"""Re-ingest selected (fixed) dead letters exactly once.

Dead letters are applied directly to the aggregates as a batch of their own, guarded like a
Kafka batch but by a replay sequence number (`wm.<topic>.p-1`; `ws.<topic>.p-1` for its entity
documents, written at once), so a replay interrupted at any point is completed, not repeated:
unfinished replays are finished before new ones are selected.
Records that are still invalid stay dead letters with their new reason. Fix a record by
editing its `raw` bytes in the `dead_letters` collection, or by changing the rules (for example
adding an interaction type), then replay it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.pipeline.apply import BatchReport, BatchWriter, marks_by_topic
from pulse.pipeline.entities import Flush
from pulse.store import dead_letters, writes
from pulse.store.client import Document

REPLAY_PARTITION = -1


@dataclass
class ReplayReport:
    """What a dead-letter replay did."""

    selected: int = 0
    revived: int = 0
    still_dead: int = 0
    batches: list[str] = field(default_factory=list)


def replay(
    writer: BatchWriter,
    *,
    reason_contains: str | None = None,
    field_name: str | None = None,
    ids: list[str] | None = None,
    limit: int = 1_000,
) -> ReplayReport:
    """Finish any interrupted replay, then replay the selected dead letters as one batch."""
    report = ReplayReport()
    for entry in dead_letters.unmarked_replays(writer.db, writer.topic):
        first = int(entry["ranges"][0]["first"])
        ids = entry["dead_letter_ids"]
        _run(writer, entry["_id"], first, ids, report, by_topic=marks_by_topic(entry))
    # Selected only now: records of a replay finished just above are no longer 'dead'.
    docs = dead_letters.still_dead(
        writer.db,
        writer.topic,
        reason_contains=reason_contains,
        field_name=field_name,
        ids=ids,
        limit=limit,
    )
    report.selected = len(docs)
    if docs:
        sequence = writes.next_sequence(writer.db, f"{writes.DLQ_REPLAY}:{writer.topic}")
        batch_id = f"{writer.topic}/{writes.DLQ_REPLAY}:{sequence}"
        _run(writer, batch_id, sequence, [doc["_id"] for doc in docs], report)
    return report


def _run(
    writer: BatchWriter,
    batch_id: str,
    sequence: int,
    ids: list[str],
    report: ReplayReport,
    *,
    by_topic: bool = True,
) -> None:
    docs = dead_letters.by_ids(writer.db, ids)
    ordered = [docs[key] for key in ids if key in docs]
    batch = MicroBatch.from_columns(
        writer.topic,
        [doc["partition"] for doc in ordered],
        [doc["offset"] for doc in ordered],
        [_kafka_ts(doc) for doc in ordered],
        [doc.get("key") for doc in ordered],
        [doc.get("raw") for doc in ordered],
    )
    ranges = [OffsetRange(REPLAY_PARTITION, sequence, sequence)]
    result: BatchReport = writer.apply(
        batch,
        batch_id=batch_id,
        ranges=ranges,
        record_offsets=False,
        store_dead_letters=False,
        replay=True,
        ledger_extra={"kind": writes.DLQ_REPLAY, "dead_letter_ids": ids},
        marks_by_topic=by_topic,
    )
    verdict = result.verdict
    if verdict is None:
        raise RuntimeError("the writer returned no verdict")
    writer.flush(  # at once: a replay is one small batch, and nothing re-reads it later
        Flush(ranges=ranges, batches=[batch_id], events=verdict.events),
        record_offsets=False,
        replay=True,
        ledger_extra={"kind": writes.DLQ_REPLAY_ENTITIES},
        marks_by_topic=by_topic,
    )
    dead_letters.mark_replayed(
        writer.db,
        writer.topic,
        batch_id,
        verdict.events.select("partition", "offset").iter_rows(),
        verdict.dead.iter_rows(named=True),
    )
    report.revived += result.valid
    report.still_dead += result.dead_lettered
    report.batches.append(batch_id)


def _kafka_ts(doc: Document) -> int:
    """The record's Kafka timestamp (ms); dead letters stored before `kafka_ts` have only the
    time."""
    if "kafka_ts" in doc:
        return int(doc["kafka_ts"])
    return int(doc["kafka_timestamp"].timestamp() * 1000)
