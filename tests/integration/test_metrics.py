"""The Prometheus endpoint, scraped as Prometheus does, over a pipeline fed by a plain producer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from pulse.config import Settings, load_settings
from pulse.metrics.server import MetricsEndpoint, MetricsPortError, serve_metrics
from tests.integration.reconcile import drain_until_caught_up
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

EVENTS = 300
MALFORMED = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, labels)."""
    text = httpx.get(url, timeout=10).raise_for_status().text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


@pytest.fixture
def endpoint(pipeline: Settings) -> Iterator[MetricsEndpoint]:
    settings = load_settings(
        kafka=pipeline.kafka.model_dump(),
        mongo=pipeline.mongo.model_dump(),
        metrics={"port": _free_port()},
    )
    served = serve_metrics(settings)
    assert served is not None
    yield served
    served.close()


def test_metrics_show_lag_then_counts_of_what_a_plain_producer_sent(
    pipeline: Settings, endpoint: MetricsEndpoint
) -> None:
    producer = Producer({"bootstrap.servers": pipeline.kafka.bootstrap_servers})
    now_ms = int(time.time() * 1000)
    for n in range(EVENTS):
        event = {"user_id": f"u{n % 7}", "item_id": f"i{n % 5}", "interaction_type": "view"}
        producer.produce(pipeline.kafka.topic, orjson.dumps(event | {"timestamp": now_ms}))
    for _ in range(MALFORMED):
        producer.produce(pipeline.kafka.topic, b"{not json")
    assert producer.flush(30) == 0

    before = wait_until(
        lambda: _scrape(endpoint.url),
        timeout=30,
        what="the lag to show every record produced",
        done=lambda s: _sum(s, "pulse_pipeline_lag_records") == EVENTS + MALFORMED,
    )
    assert before[("pulse_source_up", (("source", "kafka"),))] == 1
    assert before[("pulse_source_up", (("source", "mongodb"),))] == 1
    assert _sum(before, "pulse_events_total") == 0
    assert _sum(before, "pulse_pipeline_lag_seconds") > 0

    drain_until_caught_up(pipeline, max_batch_events=1_000)
    after = _scrape(endpoint.url)
    assert after[("pulse_events_total", ())] == EVENTS
    assert after[("pulse_dead_letters_total", ())] == MALFORMED
    assert after[("pulse_dead_letters_waiting", (("field", "(whole record)"),))] == MALFORMED
    assert after[("pulse_users", ())] == 7 and after[("pulse_items", ())] == 5
    assert _sum(after, "pulse_pipeline_lag_records") == 0
    assert after[("pulse_batches_unfinished", ())] == 0
    assert after[("pulse_batch_write_seconds", (("quantile", "0.99"),))] > 0


def test_a_busy_metrics_port_is_one_line_naming_the_setting(endpoint: MetricsEndpoint) -> None:
    port = int(endpoint.url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(MetricsPortError, match=f"^PULSE_METRICS_PORT: cannot serve .*:{port}"):
        serve_metrics(load_settings(metrics={"port": port}))
