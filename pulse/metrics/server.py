"""Serve /metrics over HTTP from the current process (prometheus-client's own server)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from pymongo import MongoClient

from pulse.config import MetricsSettings, Settings
from pulse.kafka.lag import LagReader
from pulse.metrics.collector import PulseCollector
from pulse.store.client import Document, mongo_client

log = logging.getLogger(__name__)


class MetricsPortError(RuntimeError):
    """The metrics port cannot be bound."""


@dataclass(frozen=True)
class MetricsEndpoint:
    """A running /metrics endpoint."""

    url: str
    server: WSGIServer
    lag_reader: LagReader
    mongo: MongoClient[Document]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.lag_reader.close()
        self.mongo.close()


def serve_metrics(settings: Settings) -> MetricsEndpoint | None:
    """Start /metrics in a background thread; None when turned off (PULSE_METRICS_PORT=0).
    A busy port stops the caller with one line naming the setting."""
    if settings.metrics.port == 0:
        return None
    # Short timeouts: an outage shows as pulse_source_up 0 within a scrape, not a hung one.
    client = mongo_client(settings.mongo, "pulse-metrics", timeout_ms=3_000)
    db = client[settings.mongo.database]
    lag_reader = LagReader(settings.kafka)
    registry = CollectorRegistry()
    registry.register(PulseCollector(db, lag_reader, settings.kafka.topic))
    try:
        server, _ = start_http_server(
            settings.metrics.port, addr=settings.metrics.host, registry=registry
        )
    except OSError as exc:
        lag_reader.close()
        client.close()
        raise MetricsPortError(
            f"PULSE_METRICS_PORT: cannot serve /metrics on {settings.metrics.host}:"
            f"{settings.metrics.port} ({exc.strerror}); choose a free port, or 0 to turn it off"
        ) from None
    endpoint = MetricsEndpoint(metrics_url(settings.metrics), server, lag_reader, client)
    log.info("Prometheus metrics at %s", endpoint.url)
    return endpoint


def metrics_url(metrics: MetricsSettings) -> str:
    return f"http://{metrics.host}:{metrics.port}/metrics"
