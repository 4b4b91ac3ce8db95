"""Apply one validated, aggregated batch to MongoDB under a watermark guard, with its ledger entry.

Shared by the Kafka consumer (batches identified by offset ranges) and the dead-letter replay
(batches identified by a replay sequence number); see docs/consumer.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from pymongo.database import Database

from pulse.alerts.engine import Alerting
from pulse.ingest.aggregate import aggregate
from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.ingest.validate import ValidationRules, Verdict, validate
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.statements import (
    DEAD_LETTERS,
    ITEM_MINUTES,
    ITEMS,
    MINUTE_SKETCHES,
    MINUTES,
    TOTALS,
    USER_MINUTES,
    USERS,
    Guard,
    dead_letter_statements,
    entity_updates,
    item_minute_updates,
    minute_sketch_updates,
    minute_updates,
    totals_update,
    user_bin_changes,
    user_minute_updates,
)

_IGNORED_FIELDS_KEPT = 20  # names per ledger entry: a producer sending random keys stays bounded

DeadLetterSink = Callable[[pl.DataFrame], None]
"""Also receives each batch's dead letters (e.g. the optional DLQ topic)."""


@dataclass(frozen=True)
class BatchReport:
    """What applying one micro-batch did; also stored in its ledger entry."""

    batch_id: str
    ranges: list[OffsetRange]
    records: int
    valid: int
    dead_lettered: int
    docs_written: int
    already_applied: int
    new_users: int
    new_items: int
    replay: bool
    seconds: dict[str, float] = field(default_factory=dict)
    ignored_fields: dict[str, int] = field(default_factory=dict)
    """Fields outside the event schema: how many valid records carried each."""
    verdict: Verdict | None = field(default=None, repr=False, compare=False)

    def ledger_stats(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "dead_lettered": self.dead_lettered,
            "docs_written": self.docs_written,
            "already_applied": self.already_applied,
            "new_users": self.new_users,
            "new_items": self.new_items,
            "seconds": self.seconds,
            # A list, not a map: producers' field names may hold '.' or '$'.
            "ignored_fields": [
                {"field": name, "records": count}
                for name, count in list(self.ignored_fields.items())[:_IGNORED_FIELDS_KEPT]
            ],
        }


class BatchWriter:
    """Validates, aggregates and writes batches of one topic into one database."""

    def __init__(
        self,
        db: Database[Document],
        topic: str,
        rules: ValidationRules,
        dead_letter_sink: DeadLetterSink | None = None,
        alerting: Alerting | None = None,
    ) -> None:
        self.alerting = alerting
        self.db = db
        self.topic = topic
        self.rules = rules
        self.types = rules.interaction_types
        self.dead_letter_sink = dead_letter_sink

    def apply(
        self,
        batch: MicroBatch,
        *,
        batch_id: str,
        guard: Guard,
        ranges: list[OffsetRange],
        record_offsets: bool = True,
        store_dead_letters: bool = True,
        replay: bool = False,
        consume_seconds: float = 0.0,
        ledger_extra: dict[str, Any] | None = None,
    ) -> BatchReport:
        """Write the batch: ledger 'writing', aggregates, offsets, ledger 'applied'."""
        writes.ledger_begin(self.db, batch_id, self.topic, ranges, batch.size, ledger_extra)
        try:
            report = self._write(
                batch, batch_id, guard, ranges, record_offsets, store_dead_letters, replay
            )
        except Exception as exc:
            writes.ledger_fail(self.db, batch_id, f"{type(exc).__name__}: {exc}")
            raise
        report.seconds["consume"] = round(consume_seconds, 4)
        writes.ledger_finish(self.db, batch_id, report.ledger_stats())
        return report

    def _write(
        self,
        batch: MicroBatch,
        bid: str,
        guard: Guard,
        ranges: list[OffsetRange],
        record_offsets: bool,
        store_dead_letters: bool,
        replay: bool,
    ) -> BatchReport:
        with _timer() as validating:
            verdict = validate(batch.records, self.rules)
        with _timer() as aggregating:
            aggregates = aggregate(verdict.events, self.types)
        with _timer() as writing:
            now = datetime.now(UTC)
            if store_dead_letters and verdict.dead.height:
                statements = dead_letter_statements(verdict.dead, self.topic, bid, now)
                writes.apply(self.db, DEAD_LETTERS, statements)
                if self.dead_letter_sink is not None:
                    self.dead_letter_sink(verdict.dead)
            user_ids = aggregates.users["user_id"].to_list()
            added = dict(aggregates.users.select("user_id", "total").iter_rows())
            before = writes.totals_before(self.db, USERS, user_ids, added, *guard.key)
            users = entity_updates(aggregates.users, "user_id", guard, bid, self.types)
            items = entity_updates(aggregates.items, "item_id", guard, bid, self.types)
            results = {
                USERS: writes.apply(self.db, USERS, users),
                ITEMS: writes.apply(self.db, ITEMS, items),
                ITEM_MINUTES: writes.apply(
                    self.db, ITEM_MINUTES, item_minute_updates(aggregates, guard, self.types)
                ),
                MINUTES: writes.apply(
                    self.db, MINUTES, minute_updates(aggregates, guard, self.types)
                ),
                MINUTE_SKETCHES: writes.apply(
                    self.db, MINUTE_SKETCHES, minute_sketch_updates(aggregates, guard)
                ),
            }
            new_users = self._created(USERS, aggregates.users, "user_id", results[USERS], bid)
            new_items = self._created(ITEMS, aggregates.items, "item_id", results[ITEMS], bid)
            dead_delta = verdict.dead.height if store_dead_letters else -verdict.events.height
            totals = totals_update(
                aggregates,
                guard,
                self.types,
                dead_lettered=dead_delta,
                new_users=new_users,
                new_items=new_items,
                applied_at=now,
                user_bins=user_bin_changes(before, aggregates.users),
            )
            results[TOTALS] = writes.apply(self.db, TOTALS, [totals])
            user_totals = {user: before.get(user, 0) + count for user, count in added.items()}
            item_ids = aggregates.items["item_id"].to_list()
            # Items get events from every partition, so only a read after the write is exact.
            item_totals = writes.current_totals(self.db, ITEMS, item_ids)
            item_added = dict(aggregates.items.select("item_id", "total").iter_rows())
            leader_updates = writes.update_leaders(self.db, USERS, user_totals)
            leader_updates += writes.update_leaders(self.db, ITEMS, item_totals, item_added)
            minute_ids = aggregates.minutes["minute_id"].to_list()
            leader_updates += writes.refresh_minute_estimates(self.db, minute_ids)
        with _timer() as alerting:
            if self.alerting is not None:
                if self.alerting.needs_user_minutes:
                    statements = user_minute_updates(aggregates, guard)
                    results[USER_MINUTES] = writes.apply(self.db, USER_MINUTES, statements)
                self.alerting.after_batch(aggregates, now)
        with _timer() as recording:
            if record_offsets:
                writes.advance_offsets(self.db, self.topic, ranges)
        return BatchReport(
            batch_id=bid,
            ranges=ranges,
            records=batch.size,
            valid=verdict.events.height,
            dead_lettered=verdict.dead.height,
            docs_written=sum(r.upserted + r.modified for r in results.values()) + leader_updates,
            already_applied=sum(r.already_applied for r in results.values()),
            new_users=new_users,
            new_items=new_items,
            replay=replay,
            ignored_fields=verdict.ignored_fields,
            seconds={
                "validate": round(validating.seconds, 4),
                "aggregate": round(aggregating.seconds, 4),
                "write": round(writing.seconds + recording.seconds, 4),
                "alerts": round(alerting.seconds, 4),
            },
            verdict=verdict,
        )

    def _created(
        self,
        collection: str,
        frame: pl.DataFrame,
        key: str,
        result: writes.ApplyResult,
        bid: str,
    ) -> int:
        """Documents this batch created; upsert counts are exact unless part was applied before."""
        if result.already_applied == 0:
            return result.upserted
        return writes.count_created(self.db, collection, frame[key].to_list(), bid)


@dataclass
class _Elapsed:
    seconds: float = 0.0


@contextmanager
def _timer() -> Iterator[_Elapsed]:
    elapsed = _Elapsed()
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.seconds = time.perf_counter() - started
