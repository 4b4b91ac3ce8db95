"""The MongoDB client factory: every client in Pulse is built here, from the settings, with
timeouts that make an outage fail fast."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from pulse.config import MongoSettings

Document = dict[str, Any]


def mongo_client(
    mongo: MongoSettings,
    app_name: str = "pulse",
    *,
    timeout_ms: int | None = None,
    socket_timeout_ms: int | None = None,
) -> MongoClient[Document]:
    """A client for the configured server; connects lazily on first use.

    `timeout_ms` (server selection and connect) defaults to PULSE_MONGO_TIMEOUT_MS; probes and
    the dashboard pass shorter ones.
    """
    wait = timeout_ms or mongo.timeout_ms
    return MongoClient(
        mongo.uri.get_secret_value(),
        appname=app_name,
        serverSelectionTimeoutMS=wait,
        connectTimeoutMS=wait,
        socketTimeoutMS=socket_timeout_ms or max(mongo.timeout_ms * 6, 30_000),
        tz_aware=True,
    )


def database(client: MongoClient[Document], mongo: MongoSettings) -> Database[Document]:
    """Pulse's database on that client."""
    return client[mongo.database]
