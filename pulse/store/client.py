"""The MongoDB client, built from the settings with timeouts that make an outage fail fast."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from pulse.config import MongoSettings

Document = dict[str, Any]


def mongo_client(mongo: MongoSettings, app_name: str = "pulse") -> MongoClient[Document]:
    """A client for the configured server; connects lazily on first use."""
    return MongoClient(
        mongo.uri.get_secret_value(),
        appname=app_name,
        serverSelectionTimeoutMS=mongo.timeout_ms,
        connectTimeoutMS=mongo.timeout_ms,
        socketTimeoutMS=max(mongo.timeout_ms * 6, 30_000),
        tz_aware=True,
    )


def database(client: MongoClient[Document], mongo: MongoSettings) -> Database[Document]:
    """Pulse's database on that client."""
    return client[mongo.database]
