"""`make up` twice is harmless; `make down` stops what `up` started and leaves no listener;
Ctrl-C stops everything `make run` started.

Runs a second, isolated stack on free ports with its own state folder (sharing the download
cache), so the session's stack keeps serving the other tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from pulse.config import Settings, load_settings
from pulse.kafka.clients import admin_client
from pulse.stack.process import port_open
from pulse.store.client import mongo_client
from tests.waiting import wait_until

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


def _isolated(state: Path, cache: Path, ports: list[int]) -> dict[str, str]:
    """The environment of a stack on `ports` (Kafka, controller, MongoDB, Prefect, dashboard,
    metrics), with its own state folder."""
    kafka, controller, mongo, prefect, dashboard, metrics = ports
    return {
        **os.environ,
        "PULSE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "PULSE_STACK_KAFKA_CONTROLLER_PORT": str(controller),
        "PULSE_MONGO_URI": f"mongodb://127.0.0.1:{mongo}",
        "PULSE_PREFECT_API_URL": f"http://127.0.0.1:{prefect}/api",
        "PULSE_STACK_DASHBOARD_PORT": str(dashboard),
        "PULSE_METRICS_PORT": str(metrics),
        "PULSE_STACK_STATE_DIR": str(state),
        "PULSE_STACK_CACHE_DIR": str(cache.resolve()),
        "COLUMNS": "200",  # rich wraps at 80 columns when not on a terminal
    }


def test_up_twice_then_down_leaves_nothing(tmp_path: Path, live_stack: Settings) -> None:
    ports = _free_ports(6)
    kafka, controller, mongo, prefect = ports[:4]
    state = tmp_path / "state"
    env = _isolated(state, live_stack.stack.cache_dir, ports)

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


def test_ctrl_c_stops_everything_make_run_started(tmp_path: Path, live_stack: Settings) -> None:
    """As a terminal sends it: SIGINT to make, uv and pulse at once, and then once more (uv
    forwards its own; people press twice)."""
    ports = _free_ports(6)
    state = tmp_path / "state"
    run = subprocess.Popen(
        ["make", "run"],
        cwd=REPO,
        env=_isolated(state, live_stack.stack.cache_dir, ports),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert run.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: "".join(lines),
            timeout=240,
            what="make run saying it is running",
            done=lambda out: "Ctrl-C stops it" in out or run.poll() is not None,
        )
        assert run.poll() is None, "".join(lines)
        assert set(_pids(state)) == {"kafka", "mongo", "prefect", "serve", "dashboard"}
        os.killpg(run.pid, signal.SIGINT)
        wait_until(
            lambda: "".join(lines), timeout=30, what="stopping", done=lambda o: "stopping" in o
        )
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=240)
        reader.join(timeout=240)  # the output ends when pulse itself has exited
        out = "".join(lines)
        for name in ("serve", "dashboard", "kafka", "mongo", "prefect"):
            assert f"stopped {name}" in out, out
        assert _pids(state) == {}, out
        for port in ports:
            assert not port_open("127.0.0.1", port), (
                f"port {port} still listening after Ctrl-C\n{out}"
            )
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        if _pids(state):  # only what a failed run left behind: the asserts above saw it first
            subprocess.run(
                ["make", "down"],
                cwd=REPO,
                env=_isolated(state, live_stack.stack.cache_dir, ports),
                capture_output=True,
                check=False,
            )
