"""Session fixtures for tests against the real local stack (Kafka, MongoDB/FerretDB, Prefect).

The stack is reused if it is already up (`make up`); otherwise the first test that needs it
starts it, and the services started that way are stopped when the run ends (tests/conftest.py).
With pytest-xdist, every worker is a session of its own: one file lock lets the first worker
start the stack while the others wait for it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from filelock import FileLock
from prefect.settings import PREFECT_API_URL, temporary_settings
from pymongo.database import Database

from pulse.config import Settings, load_settings
from pulse.kafka.clients import delete_topic, ensure_topic
from pulse.stack import services
from pulse.store.client import Document, mongo_client


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def live_stack(settings: Settings) -> Settings:
    """The running stack; started here if it was not up."""
    settings.stack.state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(settings.stack.state_dir / "tests-stack.lock"):
        services.up(settings, say=print)
    return settings


@pytest.fixture
def deployment_names(live_stack: Settings) -> Iterator[None]:
    """Held while a test serves Pulse's deployments on the shared Prefect server: their names
    are global there, so a second runner serving them would take the first one's runs."""
    with FileLock(live_stack.stack.state_dir / "tests-deployments.lock"):
        yield


@pytest.fixture(scope="session")
def prefect_api(live_stack: Settings) -> Iterator[str]:
    """Flows in this session report to the stack's Prefect server."""
    url = live_stack.prefect.api_url
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


@pytest.fixture
def kafka_topic(live_stack: Settings) -> Iterator[str]:
    """A fresh three-partition topic, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    ensure_topic(live_stack.kafka, name, partitions=3)
    yield name
    delete_topic(live_stack.kafka, name)


@pytest.fixture
def mongo_db(live_stack: Settings) -> Iterator[Database[Document]]:
    """A fresh database, dropped afterwards."""
    client = mongo_client(live_stack.mongo)
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def pipeline(live_stack: Settings) -> Iterator[Settings]:
    """Settings for an isolated pipeline: own 6-partition topic, database and consumer group."""
    tag = uuid.uuid4().hex[:10]
    isolated = load_settings(
        kafka={"topic": f"it-{tag}", "consumer_group": f"it-{tag}", "partitions": 6},
        mongo={"database": f"it_{tag}"},
    )
    ensure_topic(isolated.kafka)
    yield isolated
    delete_topic(isolated.kafka, isolated.kafka.topic)
    client = mongo_client(isolated.mongo)
    client.drop_database(isolated.mongo.database)
    client.close()


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        payload = json.loads(self.rfile.read(length))
        payload["_user_agent"] = self.headers.get("User-Agent", "")  # who sent it
        type(self).received.append(payload)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP receiver on a free port; yields (apprise url, received payloads), each
    with its sender's User-Agent as `_user_agent`."""
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/alerts", received
    server.shutdown()
