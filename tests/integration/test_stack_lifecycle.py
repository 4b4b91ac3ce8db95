"""`make up` twice is harmless; `make down` stops what `up` started and leaves no listener.

Runs a second, isolated stack on free ports with its own state folder (sharing the download
cache), so the session's stack keeps serving the other tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from pulse.config import Settings, load_settings
from pulse.kafka.clients import admin_client
from pulse.stack.process import port_open
from pulse.store.client import mongo_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _pids(state_dir: Path) -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted((state_dir / "pids").glob("*.pid"))}


def test_up_twice_then_down_leaves_nothing(tmp_path: Path, live_stack: Settings) -> None:
    kafka, controller, mongo, prefect = _free_ports(4)
    state = tmp_path / "state"
    env = {
        **os.environ,
        "PULSE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "PULSE_STACK_KAFKA_CONTROLLER_PORT": str(controller),
        "PULSE_MONGO_URI": f"mongodb://127.0.0.1:{mongo}",
        "PULSE_PREFECT_API_URL": f"http://127.0.0.1:{prefect}/api",
        "PULSE_STACK_STATE_DIR": str(state),
        "PULSE_STACK_CACHE_DIR": str(live_stack.stack.cache_dir.resolve()),
    }

    first = _make("up", env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "started" in first.stdout
    started = _pids(state)
    assert set(started) == {"kafka", "mongo", "prefect"}

    isolated = load_settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{kafka}"},
        mongo={"uri": f"mongodb://127.0.0.1:{mongo}"},
    )
    assert admin_client(isolated.kafka).list_topics(timeout=10).brokers
    with mongo_client(isolated.mongo) as client:
        assert client.admin.command("ping")["ok"] == 1
    ui = httpx.get(f"http://127.0.0.1:{prefect}/", timeout=10, follow_redirects=True)
    assert ui.status_code == 200 and "<html" in ui.text.lower()

    second = _make("up", env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "started" not in second.stdout  # nothing new started
    assert _pids(state) == started  # the very same processes

    status = _make("status", env)
    assert status.returncode == 0
    assert status.stdout.count("running") == 3

    down = _make("down", env)
    assert down.returncode == 0, down.stdout + down.stderr
    for port in (kafka, controller, mongo, prefect):
        assert not port_open("127.0.0.1", port), f"port {port} still listening after down"
    assert _pids(state) == {}
    assert _make("status", env).stdout.count("stopped") == 3
