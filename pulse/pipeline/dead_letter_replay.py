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

from dataclasses import asdict, dataclass, field
from typing import Any

from pulse.ingest.batch import MicroBatch
from pulse.pipeline.apply import BatchReport, BatchWriter
from pulse.pipeline.target import Target, marks_by_topic
from pulse.store import dead_letters, writes
from pulse.store.client import Document


@dataclass
class ReplayReport:
    """What a dead-letter replay did."""

    selected: int = 0
    revived: int = 0
    still_dead: int = 0
    batches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        sequence, ids = int(entry["ranges"][0]["first"]), entry["dead_letter_ids"]
        by_topic = marks_by_topic(entry)
        target = Target.dead_letter_replay(writer.topic, sequence, ids, marks_by_topic=by_topic)
        _run(writer, target, ids, report)
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
        ids = [doc["_id"] for doc in docs]
        _run(writer, Target.dead_letter_replay(writer.topic, sequence, ids), ids, report)
    return report


def _run(writer: BatchWriter, target: Target, ids: list[str], report: ReplayReport) -> None:
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
    result: BatchReport = writer.apply(batch, target)
    verdict = result.verdict
    if verdict is None:
        raise RuntimeError("the writer returned no verdict")
    writer.flush(target.entities(verdict.events))
    dead_letters.mark_replayed(
        writer.db,
        writer.topic,
        target.batch_id,
        verdict.events.select("partition", "offset").iter_rows(),
        verdict.dead.iter_rows(named=True),
    )
    report.revived += result.valid
    report.still_dead += result.dead_lettered
    report.batches.append(target.batch_id)


def _kafka_ts(doc: Document) -> int:
    """The record's Kafka timestamp (ms); dead letters stored before `kafka_ts` have only the
    time."""
    if "kafka_ts" in doc:
        return int(doc["kafka_ts"])
    return int(doc["kafka_timestamp"].timestamp() * 1000)
