"""The Prometheus series Pulse exposes: built from ledger and lag frames, outages reported."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry, generate_latest
from pymongo.errors import ServerSelectionTimeoutError

from pulse.config import load_settings
from pulse.kafka.lag import PipelineLag
from pulse.metrics.collector import PulseCollector, batch_series, lag_series
from pulse.metrics.server import serve_metrics
from pulse.store.schema import OFFSETS
from tests.fakes import MemoryDatabase


def _samples(metrics: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in metrics  # type: ignore[attr-defined]
        for sample in metric.samples
    }


def test_batch_latency_quantiles_and_unfinished_entries_come_from_the_ledger() -> None:
    ledger = pl.DataFrame(
        {
            "status": ["applied"] * 99 + ["failed", "writing"],
            "write_seconds": [0.01 * n for n in range(101)],
        }
    )
    samples = _samples(batch_series(ledger))
    assert samples[("pulse_batch_write_seconds", (("quantile", "0.5"),))] == pytest.approx(0.5)
    assert samples[("pulse_batch_write_seconds", (("quantile", "0.99"),))] == pytest.approx(0.99)
    assert samples[("pulse_batches_unfinished", ())] == 2


def test_an_empty_ledger_gives_no_quantiles_and_nothing_unfinished() -> None:
    empty = pl.DataFrame(schema={"status": pl.String, "write_seconds": pl.Float64})
    samples = _samples(batch_series(empty))
    assert samples == {("pulse_batches_unfinished", ()): 0}


def test_lag_is_one_series_per_partition() -> None:
    lag = PipelineLag(
        pl.DataFrame(
            {"partition": [0, 1], "end_offset": [10, 5], "lag": [3, 0], "lag_seconds": [1.5, 0.0]}
        )
    )
    samples = _samples(lag_series(lag))
    assert samples[("pulse_pipeline_lag_records", (("partition", "0"),))] == 3
    assert samples[("pulse_pipeline_lag_seconds", (("partition", "0"),))] == 1.5
    assert samples[("pulse_pipeline_lag_records", (("partition", "1"),))] == 0


class _Unreachable:
    """A database whose every read times out, as pymongo does when the server is down."""

    def __getitem__(self, name: str) -> object:
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")


class _Lag:
    def __init__(self, lag: PipelineLag | None) -> None:
        self._lag = lag
        self.asked: list[dict[int, int]] = []

    def lag(self, stored: dict[int, int], topic: str, now: datetime | None = None) -> PipelineLag:
        self.asked.append(dict(stored))
        if self._lag is None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return self._lag


def _scrape(collector: PulseCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_a_source_that_does_not_answer_is_reported_and_the_scrape_still_succeeds() -> None:
    text = _scrape(PulseCollector(_Unreachable(), _Lag(None), "t"))  # type: ignore[arg-type]
    assert 'pulse_source_up{source="mongodb"} 0.0' in text
    assert 'pulse_source_up{source="kafka"} 0.0' in text
    assert "pulse_events_total" not in text


def test_the_lag_is_kafkas_figures_against_the_offsets_mongodb_counted() -> None:
    memory = MemoryDatabase()
    memory[OFFSETS].insert_one({"_id": "t:0", "topic": "t", "partition": 0, "next_offset": 6})
    lag = PipelineLag(
        pl.DataFrame({"partition": [0], "end_offset": [10], "lag": [4], "lag_seconds": [2.0]})
    )
    reader = _Lag(lag)
    text = _scrape(PulseCollector(memory, reader, "t"))  # type: ignore[arg-type]
    assert reader.asked == [{0: 6}]
    assert 'pulse_source_up{source="kafka"} 1.0' in text
    assert 'pulse_pipeline_lag_records{partition="0"} 4.0' in text


def test_port_zero_turns_the_endpoint_off() -> None:
    assert serve_metrics(load_settings(metrics={"port": 0})) is None
