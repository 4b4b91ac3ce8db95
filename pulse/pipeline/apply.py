"""Write one batch: validate, aggregate, then the named steps under a watermark guard.

Two tiers (docs/consumer.md): `apply` writes a micro-batch's counts (COUNT_STEPS) at once;
`flush` writes the per-user, per-item and item x minute documents (ENTITY_STEPS) of the
batches gathered since the last flush, under watermarks of its own.

Shared by the Kafka consumer (batches identified by offset ranges) and the dead-letter replay
(batches identified by a replay sequence number); see docs/consumer.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from pymongo.database import Database

from pulse.alerts.engine import Alerting
from pulse.config import FOR_GOOD, SESSION_IDLE
from pulse.ingest.active_users import DAY_FORMAT, oldest_day_kept
from pulse.ingest.aggregate import (
    Aggregates,
    Counts,
    aggregate,
    minutes_since,
    without_detail_before,
)
from pulse.ingest.batch import MicroBatch, OffsetRange, entity_flush_id
from pulse.ingest.isolate import judge, refusal
from pulse.ingest.validate import ValidationRules, Verdict
from pulse.pipeline.entities import Flush
from pulse.pipeline.failures import is_transient
from pulse.pipeline.laps import Laps
from pulse.pipeline.priority import CountsFirst
from pulse.pipeline.target import Target, flush_fields
from pulse.store import item_buckets, trending, user_buckets, writes
from pulse.store.client import Document
from pulse.store.schema import (
    COUNT_MARKS,
    DAY_SKETCHES,
    DEAD_LETTERS,
    ENTITY_MARKS,
    ITEM_BUCKETS,
    ITEM_BUCKETS_BEFORE,
    ITEM_HOURS,
    ITEM_MINUTES,
    MINUTE_SKETCHES,
    MINUTES,
    PERIODS,
    SESSIONS,
    TOTALS,
    USER_BUCKETS,
    USER_MINUTES,
    Entity,
    record_id,
)
from pulse.store.statements import (
    Guard,
    Statement,
    day_sketch_updates,
    dead_field_counts,
    dead_letter_statements,
    entity_totals_update,
    item_hour_updates,
    item_minute_updates,
    minute_sketch_updates,
    minute_updates,
    period_updates,
    session_updates,
    totals_update,
    user_bin_changes,
    user_minute_updates,
)

log = logging.getLogger(__name__)

_IGNORED_FIELDS_KEPT = 20  # names per ledger entry: a producer sending random keys stays bounded

DeadLetterSink = Callable[[pl.DataFrame], None]
"""Also receives each batch's dead letters (e.g. the optional DLQ topic)."""


class StaleBatchError(RuntimeError):
    """A new batch holds records of partitions that others counted past its start; nothing of
    it was written."""

    def __init__(self, batch_id: str, partitions: set[int]) -> None:
        super().__init__(
            f"{batch_id}: partitions {sorted(partitions)} were counted past its start by "
            "another member; their records were dropped"
        )
        self.batch_id = batch_id
        self.partitions = partitions


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
    isolated: int = 0
    """Dead letters because processing or writing them failed (pulse/pipeline/isolation.py)."""
    verdict: Verdict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def nothing(cls, batch_id: str) -> BatchReport:
        """The report of a batch none of whose records were this member's to write."""
        return cls(batch_id, [], 0, 0, 0, 0, 0, 0, 0, replay=False)

    @classmethod
    def merged(cls, batch_id: str, reports: list[BatchReport]) -> BatchReport:
        """One report of a batch written in parts (pulse/pipeline/isolation.py)."""
        return cls(
            batch_id,
            [r for report in reports for r in report.ranges],
            sum(report.records for report in reports),
            sum(report.valid for report in reports),
            sum(report.dead_lettered for report in reports),
            sum(report.docs_written for report in reports),
            sum(report.already_applied for report in reports),
            sum(report.new_users for report in reports),
            sum(report.new_items for report in reports),
            replay=any(report.replay for report in reports),
            seconds={
                name: sum(report.seconds.get(name, 0.0) for report in reports)
                for name in {name for report in reports for name in report.seconds}
            },
            isolated=sum(report.isolated for report in reports),
        )

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
            "isolated": self.isolated,
            # A list, not a map: producers' field names may hold '.' or '$'.
            "ignored_fields": [
                {"field": name, "records": count}
                for name, count in list(self.ignored_fields.items())[:_IGNORED_FIELDS_KEPT]
            ],
        }


COUNT_STEPS = (
    "ledger-writing",
    "dead-letters",
    "minutes",
    "periods",
    "totals",
    "offsets",
    "ledger-applied",
)
"""The steps of writing one micro-batch, in order (docs/consumer.md explains each one's place)."""

ENTITY_STEPS = (
    "flush-writing",
    "sessions",
    "users",
    "items",
    "item-minutes",
    "trending",
    "item-hours",
    "active",
    "entity-totals",
    "leaders",
    "alerts",
    "entity-offsets",
    "flush-applied",
)
"""The steps of an entity flush: the per-user, per-item, item x minute and item x hour
documents, and each minute's active users and items, of the micro-batches applied since the
last flush (pulse/pipeline/entities.py)."""

ENTITY_COMMAND_STATEMENTS = 50
"""Statements per command of an entity flush running beside the counts: a batch's counts
wait at most for one such command (on FerretDB under load, a few hundred milliseconds)."""

STEPS = COUNT_STEPS + ENTITY_STEPS
"""Every named step; with PULSE_CONSUMER_ENTITY_FLUSH_SECONDS=0 one batch runs all of them."""

StepHook = Callable[[str], None]
"""Called after each step with its name (tests inject crashes here)."""


@dataclass
class _Work:
    """One batch or flush on its way into the database: what the steps read and fill in."""

    ledger_id: str
    guard: Guard
    ranges: list[OffsetRange]
    aggregates: Counts
    """A micro-batch's counts, or an entity flush's Aggregates (`_entities`)."""
    now: datetime
    record_offsets: bool
    verdict: Verdict | None = None
    store_dead_letters: bool = True
    listed: bool = True
    """Listed as waiting for an entity flush: a refused batch has nothing a flush could
    write, and a re-read would judge its records anew."""
    results: dict[str, writes.UpsertResult] = field(default_factory=dict)
    leader_updates: int = 0
    user_totals_before: dict[str, int] = field(default_factory=dict)
    user_totals: dict[str, int] = field(default_factory=dict)
    """Each touched user's total with this flush: what the leader board is offered."""
    item_totals: dict[str, int] = field(default_factory=dict)
    """Each touched item's total with this flush, as its bucket's write left it."""
    new_users: int = 0
    new_items: int = 0
    sessions: user_buckets.SessionsPlanned | None = None
    """The flush's users' sessions, planned from the buckets as the `sessions` step read them."""


class BatchWriter:
    """Validates, aggregates and writes batches of one topic into one database.

    `apply` writes a micro-batch's counts (totals, minutes, dead letters); `flush` writes the
    entity documents of valid events gathered from one or more applied batches. Holds no
    connection of its own: `db` is opened and closed by its owner
    (pulse/pipeline/opening.py), so building a writer does no I/O.
    """

    def __init__(
        self,
        db: Database[Document],
        topic: str,
        rules: ValidationRules,
        dead_letter_sink: DeadLetterSink | None = None,
        alerting: Alerting | None = None,
        after_step: StepHook | None = None,
        user_buckets: int = 1_024,
        item_buckets: int = ITEM_BUCKETS_BEFORE,
        dead_letter_bytes: int = 1_024,
        minute_detail: timedelta = FOR_GOOD,
        priority: CountsFirst | None = None,
        session_idle: timedelta = SESSION_IDLE,
    ) -> None:
        self.priority = priority
        """Given when entity flushes run beside the counts (in the background): their commands
        are short and wait while counts are written (pulse/pipeline/priority.py)."""
        self.minute_detail = minute_detail
        """How long per-minute detail is kept (PULSE_RETENTION_MINUTE_DAYS): none is written
        for older minutes."""
        self.session_idle_ms = session_idle // timedelta(milliseconds=1)
        """PULSE_SESSIONS_IDLE_MINUTES: the gap that ends a user's session."""
        self.alerting = alerting
        self.dead_letter_bytes = dead_letter_bytes
        self.user_buckets = user_buckets  # fixed per database: writes.settle_user_buckets
        self.item_buckets = item_buckets  # writes.settle_item_buckets
        self.db = db
        self.topic = topic
        self.rules = rules
        self.types = rules.interaction_types
        self.dead_letter_sink = dead_letter_sink
        self.after_step = after_step

    def apply(
        self, batch: MicroBatch, target: Target, *, consume_seconds: float = 0.0
    ) -> BatchReport:
        """Validate and aggregate the batch (pure), then write its counts in COUNT_STEPS into
        its `target`: its ledger entry, guarded by watermarks over the target's ranges.

        Its valid events (`report.verdict.events`) are for an entity flush to write later;
        a target that records offsets lists the batch as waiting for one. A refusing target
        (pulse/pipeline/isolation.py) makes dead letters of all its records with its reason.
        A target that checks staleness is refused unwritten (StaleBatchError) if MongoDB
        counts past its start.
        """
        if target.refused:
            judged = refusal(batch.records, target.refused, self.rules)
        else:
            judged = judge(batch.records, self.rules)
        verdict, counts = judged.verdict, judged.counts
        ranges = list(target.ranges)
        topic = self.topic if target.marks_by_topic else None
        work = _Work(
            ledger_id=target.batch_id,
            guard=Guard(target.ranges, COUNT_MARKS, topic),
            ranges=ranges,
            aggregates=counts,
            now=datetime.now(UTC),
            record_offsets=target.record_offsets,
            verdict=verdict,
            store_dead_letters=target.store_dead_letters,
            listed=target.refused is None,
        )
        steps = {
            "dead-letters": self._dead_letters,
            "minutes": self._minutes,
            "periods": self._periods,
            "totals": self._totals,
            "offsets": self._offsets,
        }
        with self.priority.counting() if self.priority else nullcontext():
            attempt = writes.ledger_begin(
                self.db, target.batch_id, self.topic, ranges, batch.size, target.ledger_fields()
            )
            if target.check_stale and attempt == 1:
                self._refuse_if_stale(target.batch_id, ranges)
            self._done("ledger-writing")
            step_seconds = self._run(work, steps)
            seconds = {
                "consume": consume_seconds,
                "validate": judged.validate_seconds,
                "aggregate": judged.count_seconds,
                "write": sum(step_seconds.values()),
            }
            report = self._report(
                work, step_seconds, seconds, records=batch.size, replay=target.replay
            )
            writes.ledger_finish(self.db, target.batch_id, report.ledger_stats())
        self._done("ledger-applied")
        return report

    def flush(self, pending: Flush) -> BatchReport:
        """Write the entity documents of a flush (the valid events of its batches, within its
        ranges) in ENTITY_STEPS, guarded by the flush's own watermarks (`ws`)."""
        now = datetime.now(UTC)
        timing = Laps()
        with timing("aggregate"):
            aggregates = without_detail_before(
                aggregate(pending.events, self.types), now - self.minute_detail
            )
        flush_id = entity_flush_id(self.topic, pending.ranges)
        work = _Work(
            ledger_id=flush_id,
            guard=Guard(
                tuple(pending.ranges), ENTITY_MARKS, self.topic if pending.marks_by_topic else None
            ),
            ranges=pending.ranges,
            aggregates=aggregates,
            now=now,
            record_offsets=not pending.sequenced,
        )
        steps = {
            "sessions": self._sessions,
            "users": self._users,
            "items": self._items,
            "item-minutes": self._item_minutes,
            "trending": self._trending,
            "item-hours": self._item_hours,
            "active": self._active,
            "entity-totals": self._entity_totals,
            "leaders": self._leaders,
            "alerts": self._alerts,
            "entity-offsets": self._entity_offsets,
        }
        records = pending.events.height
        fields = flush_fields(pending)
        writes.ledger_begin(self.db, flush_id, self.topic, pending.ranges, records, fields)
        self._done("flush-writing")
        step_seconds = self._run(work, steps)
        seconds = {
            "aggregate": timing.seconds["aggregate"],
            "write": sum(value for name, value in step_seconds.items() if name != "alerts"),
            "alerts": step_seconds["alerts"],
        }
        report = self._report(work, step_seconds, seconds, records=records, replay=pending.replay)
        writes.ledger_finish(self.db, flush_id, report.ledger_stats())
        self._done("flush-applied")
        return report

    def _write_entities(self, collection: str, statements: list[Statement]) -> writes.UpsertResult:
        """An entity flush's statements, in short commands that let counts go first."""
        if self.priority is None:
            return writes.upsert_guarded(self.db, collection, statements)
        return writes.upsert_guarded(
            self.db,
            collection,
            statements,
            max_count=ENTITY_COMMAND_STATEMENTS,
            before_each=self.priority.wait_turn,
        )

    def _refuse_if_stale(self, batch_id: str, ranges: list[OffsetRange]) -> None:
        """A new batch starts where MongoDB's offsets say counting stands, or it is stale: read
        before another member took over its partitions and counted some of the records."""
        stale = writes.stale_partitions(self.db, self.topic, ranges)
        if stale:
            writes.ledger_stale(self.db, batch_id, stale)
            raise StaleBatchError(batch_id, stale)

    def _run(self, work: _Work, steps: Mapping[str, Callable[[_Work], None]]) -> dict[str, float]:
        """Run the steps in order, timing each; a failure marks the ledger entry failed."""
        laps = Laps()
        try:
            for name, step in steps.items():
                with laps(name):
                    step(work)
                self._done(name)
        except Exception as exc:
            writes.ledger_fail(self.db, work.ledger_id, f"{type(exc).__name__}: {exc}")
            raise
        return laps.seconds

    def _done(self, step: str) -> None:
        if self.after_step is not None:
            self.after_step(step)

    # --- the steps of a micro-batch ------------------------------------------------------

    def _dead_letters(self, work: _Work) -> None:
        """One document per rejected record; only records stored for the first time go on to
        the dead-letter topic, so a replayed batch sends none twice."""
        dead = _verdict(work).dead
        if not (work.store_dead_letters and dead.height):
            return
        statements = dead_letter_statements(
            dead, self.topic, work.ledger_id, work.now, self.dead_letter_bytes
        )
        ids = [statement["q"]["_id"] for statement in statements]
        writes.file_in_timeline(self.db, DEAD_LETTERS, work.now, ids)
        result = writes.upsert_guarded(self.db, DEAD_LETTERS, statements)
        work.results[DEAD_LETTERS] = result
        if self.dead_letter_sink is not None and result.upserted_ids:
            new = set(result.upserted_ids)
            where = dead.select("partition", "offset").rows()
            fresh = [record_id(self.topic, p, o) in new for p, o in where]
            self.dead_letter_sink(dead.filter(pl.Series(fresh)))

    def _minutes(self, work: _Work) -> None:
        """Per-minute counts (what the dashboard's charts read), none for minutes past their
        retention (late events still count in hours, days and totals)."""
        recent = minutes_since(work.aggregates.minutes, work.now - self.minute_detail)
        statements = minute_updates(
            replace(work.aggregates, minutes=recent), work.guard, self.types
        )
        work.results[MINUTES] = writes.upsert_guarded(self.db, MINUTES, statements)

    def _periods(self, work: _Work) -> None:
        """The same counts per hour and per day (charts over days and weeks)."""
        statements = period_updates(work.aggregates, work.guard, self.types)
        work.results[PERIODS] = writes.upsert_guarded(self.db, PERIODS, statements)

    def _totals(self, work: _Work) -> None:
        verdict = _verdict(work)
        statement = totals_update(
            work.aggregates,
            work.guard,
            self.types,
            dead_lettered=verdict.dead.height
            if work.store_dead_letters
            else -verdict.events.height,
            dead_fields=dead_field_counts(verdict.dead) if work.store_dead_letters else {},
            applied_at=work.now,
            isolated=verdict.isolated,
        )
        work.results[TOTALS] = writes.upsert_guarded(self.db, TOTALS, [statement])

    def _offsets(self, work: _Work) -> None:
        if work.record_offsets:
            listed = work.ledger_id if work.listed else None
            writes.advance_offsets(self.db, self.topic, work.ranges, listed)

    # --- the steps of an entity flush ----------------------------------------------------

    def _sessions(self, work: _Work) -> None:
        """The session figures of each minute, hour and day, from the users' sessions as their
        buckets hold them before the flush: written before the users are
        (pulse/store/user_buckets.py)."""
        rows = user_buckets.by_bucket(_entities(work).users, self.user_buckets, self.types)
        planned = user_buckets.plan_sessions(self.db, rows, work.guard, self.session_idle_ms)
        statements = session_updates(planned.changes, work.guard, work.now - self.minute_detail)
        work.results[SESSIONS] = self._write_entities(SESSIONS, statements)
        work.sessions = planned

    def _users(self, work: _Work) -> None:
        """Per-user figures in their buckets. Totals before the flush tell new users apart
        and feed the activity histogram and the leader board (pulse/store/user_buckets.py)."""
        users = _entities(work).users
        if work.sessions is None:
            raise RuntimeError(f"{work.ledger_id}: users written before their sessions")
        written = user_buckets.write_users(
            self.db, work.sessions, work.guard, self.session_idle_ms, self._write_entities
        )
        work.user_totals_before = written.totals_before
        added = dict(users.select("user_id", "total").iter_rows())
        work.user_totals = {u: written.totals_before[u] + n for u, n in added.items()}
        work.new_users = written.new_users
        work.results[USER_BUCKETS] = written.result

    def _items(self, work: _Work) -> None:
        """Per-item figures in their buckets; the write tells new items apart and each
        item's total after it (pulse/store/item_buckets.py)."""
        written = item_buckets.write_items(
            self.db,
            _entities(work).items,
            self.item_buckets,
            work.guard,
            self.types,
            work.ledger_id,
            self._write_entities,
        )
        work.results[ITEM_BUCKETS] = written.result
        work.new_items = written.new_items
        work.item_totals = written.totals

    def _item_minutes(self, work: _Work) -> None:
        """Item x minute counts (alerts and item charts read these)."""
        statements = item_minute_updates(_entities(work), work.guard, self.types, self.item_buckets)
        work.results[ITEM_MINUTES] = self._write_entities(ITEM_MINUTES, statements)

    def _trending(self, work: _Work) -> None:
        """Each touched minute's board of its busiest items, from the item x minute counts
        just written (pulse/store/trending.py)."""
        touched = _entities(work).item_minutes.select("item_id", "minute_id").iter_rows()
        work.leader_updates += trending.offer(self.db, touched, self.item_buckets)

    def _item_hours(self, work: _Work) -> None:
        """Item x hour totals (item trends over days read these)."""
        statements = item_hour_updates(_entities(work), work.guard, self.item_buckets)
        work.results[ITEM_HOURS] = self._write_entities(ITEM_HOURS, statements)

    def _active(self, work: _Work) -> None:
        """Each minute's active-user and active-item sketches, then their estimates. Here and
        not with every batch: merging 2 x 1,024 registers is the costliest write of a minute."""
        aggregates = _entities(work)
        statements = minute_sketch_updates(aggregates, work.guard)
        work.results[MINUTE_SKETCHES] = self._write_entities(MINUTE_SKETCHES, statements)
        oldest = oldest_day_kept(work.now.date()).strftime(DAY_FORMAT)
        days = day_sketch_updates(aggregates, work.guard, oldest)
        work.results[DAY_SKETCHES] = self._write_entities(DAY_SKETCHES, days)
        minute_ids = list(aggregates.minute_sketches)
        work.leader_updates += writes.refresh_minute_estimates(self.db, minute_ids)

    def _entity_totals(self, work: _Work) -> None:
        statement = entity_totals_update(
            work.guard,
            new_users=work.new_users,
            new_items=work.new_items,
            user_bins=user_bin_changes(work.user_totals_before, _entities(work).users),
        )
        work.results[TOTALS] = writes.upsert_guarded(self.db, TOTALS, [statement])

    def _leaders(self, work: _Work) -> None:
        """Offer the touched users and items to the leader boards."""
        aggregates = _entities(work)
        item_added = dict(aggregates.items.select("item_id", "total").iter_rows())
        updates = writes.update_leaders(self.db, Entity.USERS, work.user_totals)
        work.leader_updates += updates + writes.update_leaders(
            self.db, Entity.ITEMS, work.item_totals, item_added
        )

    def _alerts(self, work: _Work) -> None:
        if self.alerting is None:
            return
        if self.alerting.needs_user_minutes:
            statements = user_minute_updates(_entities(work), work.guard)
            work.results[USER_MINUTES] = self._write_entities(USER_MINUTES, statements)
        try:
            self.alerting.after_batch(_entities(work), work.now)
        except Exception as exc:
            if is_transient(exc):
                raise  # the flush is retried, and its alerts with it
            # Alerting is advice about the figures: its failure must not cost the figures.
            log.exception("alert checks of %s failed; the flush goes on", work.ledger_id)

    def _entity_offsets(self, work: _Work) -> None:
        if work.record_offsets:
            writes.advance_entity_offsets(self.db, self.topic, work.ranges)

    # --- helpers -------------------------------------------------------------------------

    def _report(
        self,
        work: _Work,
        step_seconds: dict[str, float],
        seconds: dict[str, float],
        *,
        records: int,
        replay: bool,
    ) -> BatchReport:
        results = work.results.values()
        verdict = work.verdict
        return BatchReport(
            batch_id=work.ledger_id,
            ranges=work.ranges,
            records=records,
            valid=verdict.events.height if verdict else records,
            dead_lettered=verdict.dead.height if verdict else 0,
            docs_written=sum(r.upserted + r.modified for r in results) + work.leader_updates,
            already_applied=sum(r.already_applied for r in results),
            new_users=work.new_users,
            new_items=work.new_items,
            replay=replay,
            ignored_fields=verdict.ignored_fields if verdict else {},
            isolated=verdict.isolated if verdict else 0,
            seconds={name: round(value, 4) for name, value in seconds.items()},
            step_seconds={name: round(value, 4) for name, value in step_seconds.items()},
            docs_by_collection={
                name: result.upserted + result.modified for name, result in work.results.items()
            }
            | ({"leaders": work.leader_updates} if work.leader_updates else {}),
            verdict=verdict,
        )


def _verdict(work: _Work) -> Verdict:
    if work.verdict is None:
        raise RuntimeError(f"{work.ledger_id}: a micro-batch step ran without a verdict")
    return work.verdict


def _entities(work: _Work) -> Aggregates:
    if not isinstance(work.aggregates, Aggregates):
        raise TypeError(f"{work.ledger_id}: an entity step ran on a micro-batch's counts")
    return work.aggregates
