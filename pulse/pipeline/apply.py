"""Write one batch: validate, aggregate, then the named STEPS under a watermark guard.

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
from pulse.ingest.aggregate import Aggregates, aggregate
from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.ingest.validate import ValidationRules, Verdict, validate
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.schema import (
    DEAD_LETTERS,
    ITEM_MINUTES,
    ITEMS,
    MINUTE_SKETCHES,
    MINUTES,
    TOTALS,
    USER_MINUTES,
    USERS,
    record_id,
)
from pulse.store.statements import (
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
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Time of each write step (STEPS), to see where the database time goes."""
    docs_by_collection: dict[str, int] = field(default_factory=dict)
    """Documents written (inserted or changed) per collection."""
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
            "step_seconds": self.step_seconds,
            "docs": self.docs_by_collection,
            # A list, not a map: producers' field names may hold '.' or '$'.
            "ignored_fields": [
                {"field": name, "records": count}
                for name, count in list(self.ignored_fields.items())[:_IGNORED_FIELDS_KEPT]
            ],
        }


STEPS = (
    "ledger-writing",
    "dead-letters",
    "users",
    "items",
    "minutes",
    "totals",
    "leaders",
    "alerts",
    "offsets",
    "ledger-applied",
)
"""The steps of writing one batch, in order (docs/consumer.md explains each one's place)."""

StepHook = Callable[[str], None]
"""Called after each step with its name (tests inject crashes here)."""


@dataclass
class _Batch:
    """One batch on its way into the database: what the steps read and fill in."""

    batch: MicroBatch
    batch_id: str
    guard: Guard
    ranges: list[OffsetRange]
    verdict: Verdict
    aggregates: Aggregates
    now: datetime
    replay: bool
    record_offsets: bool
    store_dead_letters: bool
    results: dict[str, writes.ApplyResult] = field(default_factory=dict)
    leader_updates: int = 0
    user_totals_before: dict[str, int] = field(default_factory=dict)
    user_totals: dict[str, int] = field(default_factory=dict)
    """Each touched user's total with this batch: what the leader board is offered."""
    new_users: int = 0
    new_items: int = 0


class BatchWriter:
    """Validates, aggregates and writes batches of one topic into one database.

    Holds no connection of its own: `db` is opened and closed by its owner
    (pulse/pipeline/session.py), so building a writer does no I/O.
    """

    def __init__(
        self,
        db: Database[Document],
        topic: str,
        rules: ValidationRules,
        dead_letter_sink: DeadLetterSink | None = None,
        alerting: Alerting | None = None,
        after_step: StepHook | None = None,
    ) -> None:
        self.alerting = alerting
        self.db = db
        self.topic = topic
        self.rules = rules
        self.types = rules.interaction_types
        self.dead_letter_sink = dead_letter_sink
        self.after_step = after_step

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
        """Validate and aggregate the batch (pure), then write it in the named STEPS."""
        with _timer() as validating:
            verdict = validate(batch.records, self.rules)
        with _timer() as aggregating:
            aggregates = aggregate(verdict.events, self.types)
        work = _Batch(
            batch=batch,
            batch_id=batch_id,
            guard=guard,
            ranges=ranges,
            verdict=verdict,
            aggregates=aggregates,
            now=datetime.now(UTC),
            replay=replay,
            record_offsets=record_offsets,
            store_dead_letters=store_dead_letters,
        )
        writes.ledger_begin(self.db, batch_id, self.topic, ranges, batch.size, ledger_extra)
        self._done("ledger-writing")
        steps = {
            "dead-letters": self._dead_letters,
            "users": self._users,
            "items": self._items,
            "minutes": self._minutes,
            "totals": self._totals,
            "leaders": self._leaders,
            "alerts": self._alerts,
            "offsets": self._offsets,
        }
        timers: dict[str, _Elapsed] = {}
        try:
            for name, step in steps.items():
                with _timer() as timers[name]:
                    step(work)
                self._done(name)
        except Exception as exc:
            writes.ledger_fail(self.db, batch_id, f"{type(exc).__name__}: {exc}")
            raise
        report = self._report(
            work,
            timers,
            consume=consume_seconds,
            validate=validating.seconds,
            aggregate=aggregating.seconds,
        )
        writes.ledger_finish(self.db, batch_id, report.ledger_stats())
        self._done("ledger-applied")
        return report

    def _done(self, step: str) -> None:
        if self.after_step is not None:
            self.after_step(step)

    # --- the steps -----------------------------------------------------------------------

    def _dead_letters(self, work: _Batch) -> None:
        """One document per rejected record; only records stored for the first time go on to
        the dead-letter topic, so a replayed batch sends none twice."""
        dead = work.verdict.dead
        if not (work.store_dead_letters and dead.height):
            return
        statements = dead_letter_statements(dead, self.topic, work.batch_id, work.now)
        result = writes.apply(self.db, DEAD_LETTERS, statements)
        work.results[DEAD_LETTERS] = result
        if self.dead_letter_sink is not None and result.upserted_ids:
            new = set(result.upserted_ids)
            where = dead.select("partition", "offset").rows()
            fresh = [record_id(self.topic, p, o) in new for p, o in where]
            self.dead_letter_sink(dead.filter(pl.Series(fresh)))

    def _users(self, work: _Batch) -> None:
        """Per-user totals; their totals before the batch feed the activity histogram."""
        users = work.aggregates.users
        added = dict(users.select("user_id", "total").iter_rows())
        work.user_totals_before = writes.totals_before(
            self.db, USERS, list(added), added, *work.guard.key
        )
        work.user_totals = {u: work.user_totals_before.get(u, 0) + n for u, n in added.items()}
        statements = entity_updates(users, "user_id", work.guard, work.batch_id, self.types)
        work.results[USERS] = writes.apply(self.db, USERS, statements)
        work.new_users = self._created(USERS, users, "user_id", work)

    def _items(self, work: _Batch) -> None:
        items = work.aggregates.items
        statements = entity_updates(items, "item_id", work.guard, work.batch_id, self.types)
        work.results[ITEMS] = writes.apply(self.db, ITEMS, statements)
        work.new_items = self._created(ITEMS, items, "item_id", work)

    def _minutes(self, work: _Batch) -> None:
        """Item x minute and per-minute counts, and each minute's active-user sketch."""
        aggregates, guard = work.aggregates, work.guard
        work.results[ITEM_MINUTES] = writes.apply(
            self.db, ITEM_MINUTES, item_minute_updates(aggregates, guard, self.types)
        )
        work.results[MINUTES] = writes.apply(
            self.db, MINUTES, minute_updates(aggregates, guard, self.types)
        )
        work.results[MINUTE_SKETCHES] = writes.apply(
            self.db, MINUTE_SKETCHES, minute_sketch_updates(aggregates, guard)
        )

    def _totals(self, work: _Batch) -> None:
        dead = work.verdict.dead.height
        statement = totals_update(
            work.aggregates,
            work.guard,
            self.types,
            dead_lettered=dead if work.store_dead_letters else -work.verdict.events.height,
            new_users=work.new_users,
            new_items=work.new_items,
            applied_at=work.now,
            user_bins=user_bin_changes(work.user_totals_before, work.aggregates.users),
        )
        work.results[TOTALS] = writes.apply(self.db, TOTALS, [statement])

    def _leaders(self, work: _Batch) -> None:
        """Offer the touched users and items to the leader boards; refresh minute estimates."""
        aggregates = work.aggregates
        # Items get events from every partition, so only a read after the write is exact.
        item_totals = writes.current_totals(self.db, ITEMS, aggregates.items["item_id"].to_list())
        item_added = dict(aggregates.items.select("item_id", "total").iter_rows())
        updates = writes.update_leaders(self.db, USERS, work.user_totals)
        updates += writes.update_leaders(self.db, ITEMS, item_totals, item_added)
        minute_ids = aggregates.minutes["minute_id"].to_list()
        work.leader_updates = updates + writes.refresh_minute_estimates(self.db, minute_ids)

    def _alerts(self, work: _Batch) -> None:
        if self.alerting is None:
            return
        if self.alerting.needs_user_minutes:
            statements = user_minute_updates(work.aggregates, work.guard)
            work.results[USER_MINUTES] = writes.apply(self.db, USER_MINUTES, statements)
        self.alerting.after_batch(work.aggregates, work.now)

    def _offsets(self, work: _Batch) -> None:
        if work.record_offsets:
            writes.advance_offsets(self.db, self.topic, work.ranges)

    # --- helpers -------------------------------------------------------------------------

    def _report(self, work: _Batch, timers: dict[str, _Elapsed], **seconds: float) -> BatchReport:
        results = work.results.values()
        seconds["write"] = sum(timers[name].seconds for name in timers if name != "alerts")
        seconds["alerts"] = timers["alerts"].seconds
        return BatchReport(
            batch_id=work.batch_id,
            ranges=work.ranges,
            records=work.batch.size,
            valid=work.verdict.events.height,
            dead_lettered=work.verdict.dead.height,
            docs_written=sum(r.upserted + r.modified for r in results) + work.leader_updates,
            already_applied=sum(r.already_applied for r in results),
            new_users=work.new_users,
            new_items=work.new_items,
            replay=work.replay,
            ignored_fields=work.verdict.ignored_fields,
            seconds={name: round(value, 4) for name, value in seconds.items()},
            step_seconds={name: round(timer.seconds, 4) for name, timer in timers.items()},
            docs_by_collection={
                name: result.upserted + result.modified for name, result in work.results.items()
            }
            | {"leaders": work.leader_updates},
            verdict=work.verdict,
        )

    def _created(self, collection: str, frame: pl.DataFrame, key: str, work: _Batch) -> int:
        """Documents this batch created; upsert counts are exact unless part was applied before."""
        result = work.results[collection]
        if result.already_applied == 0:
            return result.upserted
        return writes.count_created(self.db, collection, frame[key].to_list(), work.batch_id)


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
