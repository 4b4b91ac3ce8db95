"""Drain the topic in micro-batches until caught up or out of time (flow and CLI share this)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pulse.ingest.batch import MicroBatch, without_topic
from pulse.pipeline.apply import BatchReport


class Source(Protocol):
    """Where batches come from: a consumer-group member (pulse/pipeline/consumer.py), or an
    in-memory list in the unit tests."""

    assigned: set[int]

    @property
    def replays(self) -> list[BatchReport]:
        """Unfinished work of earlier owners written so far."""
        ...

    @property
    def flushes(self) -> list[BatchReport]:
        """Entity flushes written so far."""
        ...

    def poll_batch(
        self, max_events: int | None = None, max_wait: float | None = None
    ) -> MicroBatch | None: ...

    def lag(self) -> dict[int, int]: ...

    def caught_up(self) -> bool: ...

    def flush_due(self) -> None: ...

    def flush_entities(self) -> None: ...

    def hold_flushes(self) -> None: ...

    def hand_over(self) -> None: ...


ApplyBatch = Callable[[MicroBatch, float], BatchReport]
"""Applies one batch (given the seconds spent consuming it); the flow wraps it in a task."""


@dataclass
class DrainSummary:
    """What one drain did."""

    batches: int = 0
    records: int = 0
    valid: int = 0
    dead_lettered: int = 0
    docs_written: int = 0
    replayed: list[str] = field(default_factory=list)
    entity_flushes: int = 0
    seconds: float = 0.0
    caught_up: bool = False
    lag: dict[int, int] = field(default_factory=dict)
    write_seconds: float = 0.0
    batch_rows: list[dict[str, Any]] = field(default_factory=list)
    """One row per applied micro-batch, for the run's table artifact."""

    def add(self, report: BatchReport) -> None:
        self.batch_rows.append(batch_row(report))
        self.batches += 1
        self.records += report.records
        self.valid += report.valid
        self.dead_lettered += report.dead_lettered
        self.docs_written += report.docs_written
        self.write_seconds += report.seconds.get("write", 0.0)

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The drain as plain values (a flow run's result), partitions named as text."""
        figures = asdict(self)
        del figures["write_seconds"], figures["batch_rows"]  # in the run's artifacts instead
        return figures | {"lag": {str(p): n for p, n in self.lag.items()}}


def drain(
    consumer: Source,
    apply: ApplyBatch,
    *,
    time_budget: float,
    max_batch_events: int | None = None,
    max_batch_wait: float | None = None,
    stop_when_caught_up: bool = True,
    stop: threading.Event | None = None,
    hand_over: bool = False,
    quiet_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> DrainSummary:
    """Poll and apply batches until the budget is spent, `stop` is set or nothing is left.

    `stop` is checked between batches only, so a batch is never abandoned half-written. The
    entity flush is written when due, also while no records arrive, and once more at the end:
    a drain leaves every batch it applied fully visible. With `hand_over` (a successor has
    joined the group to take the partitions over) it does not: what waits is the successor's
    to re-read and write, so the partitions are not held back for a flush at the handover.
    Nor does any entity flush start in the budget's last `quiet_seconds`, when the successor
    joins: the partitions it takes would wait for a flush being written then.
    """
    summary = DrainSummary()
    flushes_before = len(consumer.flushes)
    started = clock()
    quiet_from = started + time_budget - quiet_seconds if hand_over and quiet_seconds else None
    while clock() - started < time_budget and not (stop and stop.is_set()):
        if quiet_from is not None and clock() >= quiet_from:
            consumer.hold_flushes()
            quiet_from = None
        polled = clock()
        batch = consumer.poll_batch(max_batch_events, max_batch_wait)
        consume_seconds = clock() - polled
        if batch is None:
            consumer.flush_due()
            if stop_when_caught_up and consumer.assigned and consumer.caught_up():
                summary.caught_up = True
                break
            continue
        summary.add(apply(batch, consume_seconds))
    if hand_over:
        consumer.hand_over()
    else:
        consumer.flush_entities()
    flushes = consumer.flushes[flushes_before:]
    summary.entity_flushes = len(flushes)
    summary.docs_written += sum(report.docs_written for report in flushes)
    summary.replayed = [report.batch_id for report in consumer.replays]
    summary.seconds = round(clock() - started, 3)
    summary.lag = consumer.lag() if consumer.assigned else {}
    summary.caught_up = summary.caught_up or (bool(summary.lag) and not any(summary.lag.values()))
    return summary


def batch_row(report: BatchReport) -> dict[str, Any]:
    """A micro-batch as one row of a table: its offsets and what it counted and wrote."""
    return {
        "batch": without_topic(report.batch_id),  # the topic is in the artifact's description
        "records": report.records,
        "valid": report.valid,
        "dead_lettered": report.dead_lettered,
        "documents_written": report.docs_written,
        "write_seconds": round(report.seconds.get("write", 0.0), 3),
        "replay": report.replay,
    }


def summary_markdown(summary: DrainSummary, topic: str) -> str:
    """The drain as a Markdown report (Prefect artifact)."""
    lag = ", ".join(f"p{p}: {n:,}" for p, n in sorted(summary.lag.items())) or "no partitions"
    rows = [
        ("topic", f"`{topic}`"),
        ("micro-batches", f"{summary.batches:,}"),
        ("records", f"{summary.records:,}"),
        ("valid events", f"{summary.valid:,}"),
        ("dead-lettered", f"{summary.dead_lettered:,}"),
        ("documents written", f"{summary.docs_written:,}"),
        ("entity flushes", f"{summary.entity_flushes:,}"),
        ("replayed unfinished batches", str(len(summary.replayed))),
        ("elapsed", f"{summary.seconds:.1f} s ({summary.write_seconds:.1f} s writing)"),
        ("throughput", f"{summary.events_per_second:,.0f} records/s"),
        ("caught up", "yes" if summary.caught_up else "no"),
        ("lag at end", lag),
    ]
    lines = ["# Consumer run", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if summary.replayed:
        lines += ["", "Replayed: " + ", ".join(f"`{bid}`" for bid in summary.replayed)]
    return "\n".join(lines) + "\n"
