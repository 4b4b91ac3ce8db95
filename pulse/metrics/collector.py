"""Pulse's Prometheus series, read from MongoDB and Kafka at each scrape.

The consumer runs in short-lived flow runs, so counters kept in its memory would reset every
two minutes and be scattered over processes. The figures already live in MongoDB (totals,
ledger, alert state) and Kafka (end offsets), so the process that serves /metrics reads them
there when Prometheus asks: every series is exact whichever run wrote it. A source that does
not answer shows as `pulse_source_up{source=...} 0` and its series are left out of that scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import polars as pl
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pymongo.database import Database

from pulse.kafka.lag import LagReader, PipelineLag
from pulse.store import reads
from pulse.store.client import Document
from pulse.store.schema import LOST_RECORDS, REFUSED_FLUSHES, UNFINISHED

log = logging.getLogger(__name__)

RECENT_BATCHES = 200
"""Ledger entries the batch-latency quantiles are taken over."""
QUANTILES = (0.5, 0.99)


class PulseCollector(Collector):
    """Collects every pulse_* series from the database and Kafka when scraped."""

    def __init__(
        self,
        db: Database[Document],
        lag_reader: LagReader,
        topic: str,
    ) -> None:
        self._db = db
        self._lag_reader = lag_reader
        self._topic = topic

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "pulse_source_up", "1 if the source answered this scrape, else 0", labels=["source"]
        )
        db = self._db
        mongo = _attempt("MongoDB", lambda: list(database_series(db, datetime.now(UTC))))
        up.add_metric(["mongodb"], 0.0 if mongo is None else 1.0)
        lag = _attempt("Kafka", lambda: list(lag_series(self._pipeline_lag())))
        up.add_metric(["kafka"], 0.0 if lag is None else 1.0)
        yield up
        yield from mongo or []
        yield from lag or []

    def _pipeline_lag(self) -> PipelineLag:
        return self._lag_reader.lag(reads.stored_offsets(self._db, self._topic), self._topic)


def database_series(db: Database[Document], now: datetime) -> Iterator[Metric]:
    """Totals, the last minute's rate, batch latency, unfinished batches, dead letters, alerts."""
    figures = reads.totals(db) or reads.Totals()
    yield _counter("pulse_events", "Valid events counted", figures.events)
    yield _counter("pulse_dead_letters", "Records dead-lettered", figures.dead_lettered)
    yield _counter(
        "pulse_records_isolated",
        "Records dead-lettered because processing or writing them failed (isolated)",
        figures.isolated,
    )
    yield _counter(
        "pulse_records_lost",
        "Records of batches Kafka no longer held, resolved as lost (pulse ledger resolve)",
        reads.counter(db, LOST_RECORDS),
    )
    yield _counter(
        "pulse_entity_flushes_refused",
        "Entity flushes of one batch left out because writing them failed for their records",
        reads.counter(db, REFUSED_FLUSHES),
    )
    yield _gauge("pulse_users", "Distinct users seen", figures.users)
    yield _gauge("pulse_items", "Distinct items seen", figures.items)
    yield _gauge(
        "pulse_events_per_second",
        "Events per second in the last complete minute of event time",
        reads.last_full_minute(db, now) / 60,
    )
    yield from batch_series(reads.ledger(db, RECENT_BATCHES))
    waiting = GaugeMetricFamily(
        "pulse_dead_letters_waiting",
        "Dead letters not replayed yet, by the field their reason names",
        labels=["field"],
    )
    for field, count in reads.dead_letter_reasons(db).iter_rows():
        waiting.add_metric([field], float(count))
    yield waiting
    yield _gauge(
        "pulse_alert_rules_rejected",
        "Rules in the alert_rules collection skipped because they do not validate",
        reads.rule_rejections(db).height,
    )
    firing = GaugeMetricFamily("pulse_alerts_firing", "Alerts firing now, by rule", labels=["rule"])
    for rule, count in sorted(reads.firing_alerts(db).items()):
        firing.add_metric([rule], float(count))
    yield firing


def batch_series(ledger: pl.DataFrame) -> Iterator[Metric]:
    """Write-time quantiles of the recent ledger entries and how many are not applied."""
    latency = GaugeMetricFamily(
        "pulse_batch_write_seconds",
        f"Write time of the last {RECENT_BATCHES} micro-batches and entity flushes, by quantile",
        labels=["quantile"],
    )
    unfinished = 0
    if ledger.height:
        seconds = ledger.get_column("write_seconds")
        for q in QUANTILES:
            latency.add_metric([str(q)], float(seconds.quantile(q, "nearest") or 0.0))
        unfinished = ledger.filter(pl.col("status").is_in(UNFINISHED)).height
    yield latency
    yield _gauge(
        "pulse_batches_unfinished",
        f"Of the last {RECENT_BATCHES} ledger entries, those not applied yet (writing or failed)",
        unfinished,
    )


def lag_series(lag: PipelineLag) -> Iterator[Metric]:
    records = GaugeMetricFamily(
        "pulse_pipeline_lag_records", "Records in Kafka not counted yet", labels=["partition"]
    )
    seconds = GaugeMetricFamily(
        "pulse_pipeline_lag_seconds",
        "Age of the oldest record not counted yet (0 when all are counted)",
        labels=["partition"],
    )
    for partition, lag_records, lag_seconds in lag.partitions.select(
        "partition", "lag", "lag_seconds"
    ).iter_rows():
        records.add_metric([str(partition)], float(lag_records))
        seconds.add_metric([str(partition)], float(lag_seconds))
    yield records
    yield seconds


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _attempt(source: str, read: Callable[[], list[Metric]]) -> list[Metric] | None:
    try:
        return read()
    except Exception as exc:  # a scrape reports the outage; it never fails the endpoint
        log.warning("metrics: %s did not answer: %s", source, str(exc).splitlines()[0])
        return None
