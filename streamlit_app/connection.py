"""The dashboard's MongoDB connection and query cache (Streamlit caching at the boundary)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import streamlit as st
from pymongo import MongoClient
from pymongo.database import Database

from pulse.config import Settings, load_settings
from pulse.store.client import Document, mongo_client

P = ParamSpec("P")
R = TypeVar("R")
CACHE_SECONDS = 1.0  # shared across sessions and fragments; shorter than any refresh interval


@st.cache_resource(show_spinner=False)
def _client(uri: str) -> MongoClient[Document]:
    # Short timeouts: an outage shows as a banner within seconds, not a hung page. The URI is
    # the cache key only; the client is built from the settings like every other.
    return mongo_client(
        settings().mongo, "pulse-dashboard", timeout_ms=2_000, socket_timeout_ms=10_000
    )


def settings() -> Settings:
    return load_settings()


def database() -> Database[Document]:
    current = settings()
    return _client(current.mongo.uri.get_secret_value())[current.mongo.database]


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=500)
def _cached(
    name: str, database_name: str, args: tuple[Any, ...], _query: Callable[..., Any]
) -> Any:
    return _query(database(), *args)


def fetch(query: Callable[..., R], *args: Any) -> R:
    """`query(database, *args)`, cached briefly; `args` must be hashable."""
    name = f"{query.__module__}.{query.__qualname__}"
    result: R = _cached(name, settings().mongo.database, args, query)
    return result
