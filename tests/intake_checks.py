"""The rule of the intake, as one check both the property tests and the fuzz target run.

For any records a producer can put on a topic: validation returns (never raises), the bulk
and the per-record reader give the same verdict, every record is either a valid event or a
dead letter with a one-line reason, and everything downstream of validation (counting, the
entity aggregates, every statement of both tiers) builds without raising and fits in a
MongoDB command.
"""

from __future__ import annotations

from datetime import UTC, datetime

import bson
import polars as pl
from polars.testing import assert_frame_equal

from pulse.ingest.aggregate import aggregate, count
from pulse.ingest.batch import MicroBatch
from pulse.ingest.bulk import read_usual
from pulse.ingest.validate import UNREADABLE, ValidationRules, Verdict, validate
from pulse.store.item_buckets import by_bucket, plan
from pulse.store.schema import ENTITY_MARKS
from pulse.store.statements import (
    Guard,
    dead_letter_statements,
    item_hour_updates,
    item_minute_updates,
    minute_sketch_updates,
    minute_updates,
    totals_update,
    user_minute_updates,
)
from pulse.store.user_buckets import by_bucket as users_by_bucket
from pulse.store.user_buckets import plan as user_plan
from pulse.store.writes import STATEMENT_BYTES, chunks

RULES = ValidationRules(
    interaction_types=("view", "click", "add_to_cart", "purchase"),
    max_record_bytes=4_096,
    max_age_ms=7 * 24 * 3_600_000,
    max_lead_ms=3_600_000,
)
KEEP_BYTES = 256
_NOW = datetime(2026, 12, 1, tzinfo=UTC)
REASON_CHARACTERS = 300
"""A reason is one short line: quoted values are shortened to 40 characters."""


def check_intake(batch: MicroBatch, rules: ValidationRules = RULES) -> Verdict:
    """Assert the intake's rule for one batch; returns the verdict."""
    read_usual(batch.records.get_column("value"), rules.max_record_bytes)  # raises nothing
    verdict = validate(batch.records, rules)
    reference = validate(batch.records, rules, bulk=False)
    assert_frame_equal(verdict.events, reference.events)
    assert_frame_equal(verdict.dead, reference.dead)
    assert verdict.ignored_fields == reference.ignored_fields

    judged = pl.concat(
        [verdict.events.select("partition", "offset"), verdict.dead.select("partition", "offset")]
    ).sort("partition", "offset")
    assert_frame_equal(judged, batch.records.select("partition", "offset"))
    for reason in verdict.dead.get_column("reason").to_list():
        assert reason and "\n" not in reason and len(reason) <= REASON_CHARACTERS, reason
        # The per-record safety net (pulse/ingest/validate.py:_parse) must never be needed.
        assert not reason.startswith(UNREADABLE), reason

    _check_statements(batch, verdict, rules)
    return verdict


def _check_statements(batch: MicroBatch, verdict: Verdict, rules: ValidationRules) -> None:
    types = rules.interaction_types
    ranges = tuple(batch.ranges())
    if not ranges:
        return
    guard = Guard(ranges, topic=batch.topic)
    entity_guard = Guard(ranges, ENTITY_MARKS, batch.topic)
    counts = count(verdict.events, types)
    entities = aggregate(verdict.events, types)
    statements = [
        *dead_letter_statements(verdict.dead, batch.topic, "b", _NOW, KEEP_BYTES),
        *minute_updates(counts, guard, types),
        totals_update(counts, guard, types, dead_lettered=verdict.dead.height, applied_at=_NOW),
        *(
            user_plan(bucket, rows, None, entity_guard, lambda user, before: before)
            for bucket, rows in users_by_bucket(entities.users, 16, types).items()
        ),
        *(
            plan(bucket, rows, None, entity_guard, types, "f").statement
            for bucket, rows in by_bucket(entities.items, 16).items()
        ),
        *item_minute_updates(entities, entity_guard, types, 16),
        *item_hour_updates(entities, entity_guard, 16),
        *minute_sketch_updates(entities, entity_guard),
        *user_minute_updates(entities, entity_guard),
    ]
    for statement in statements:
        assert len(bson.encode(statement)) <= STATEMENT_BYTES
    assert sum(len(chunk) for chunk in chunks(statements)) == len(statements)


def batch_of(values: list[bytes | None], stamps: list[int], topic: str = "t") -> MicroBatch:
    """A one-partition batch of these values, at these Kafka timestamps."""
    n = len(values)
    return MicroBatch.from_columns(topic, [0] * n, list(range(n)), stamps, [b"k"] * n, values)
