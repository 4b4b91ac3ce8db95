"""The drain as users run it, for bench/consumer.py: `pulse consume` in a process of its own, and
a run of the served `aggregate-interactions/drain` deployment (`python -m deployments.serve`, as
`make run` serves it). Both read the benchmark's topic into a database of their own, with the
default alert rules (alerts.yaml), and stop when caught up.

Each is timed from the outside (process start to exit; the run's Pending to Completed, so the
runner's flow-run process start-up counts) and also reports the rate it prints itself, which
starts once its consumer is open.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from deployments.definitions import DRAIN
from pulse.config import Settings, env_name
from pulse.prefect_api import prefect_api

REPO = Path(__file__).resolve().parents[1]
PULSE = Path(sys.executable).parent / "pulse"
BUDGET_SECONDS = 780.0
"""Long enough for a 3M-event backlog; a served run may drain at most 780 s
(flows/policies.py: MAX_DRAIN_BUDGET_SECONDS)."""
STOP_SECONDS = 1_200.0
"""How long either may take in all before the benchmark gives up on it."""
ENDED = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
THROUGHPUT = re.compile(r"([\d,]+) records \(([\d,]+)/s\)")
"""The last line of `pulse consume`: '... 3,000,000 records (52,310/s), lag {...}'."""
ARTIFACT_ROW = re.compile(r"\| (records|throughput) \| ([\d,]+)")


@dataclass(frozen=True)
class Target:
    """What a drain reads and where it writes: the benchmark's topic, a database of its own, and
    the in-process run's batch size and user and item x minute buckets."""

    topic: str
    db_name: str
    batch: int
    user_buckets: int
    item_buckets: int


@dataclass(frozen=True)
class Drained:
    """One drain as run from outside: its wall-clock seconds and its own report."""

    records: int
    seconds: float
    reported_rate: float


def _env(settings: Settings, target: Target) -> dict[str, str]:
    own = {
        ("kafka", "topic"): target.topic,
        ("kafka", "consumer_group"): f"bench-{target.db_name}",
        ("mongo", "database"): target.db_name,
        ("mongo", "user_buckets"): target.user_buckets,
        ("mongo", "item_buckets"): target.item_buckets,
        ("consumer", "max_batch_events"): target.batch,
        ("metrics", "port"): 0,  # the runner's /metrics would meet `make run`'s port
    }
    return {
        **os.environ,
        **{env_name(path): str(value) for path, value in own.items()},
        "PREFECT_API_URL": settings.prefect.api_url,
        "COLUMNS": "400",  # rich wraps at 80 columns when not on a terminal
    }


def cli_consume(settings: Settings, target: Target) -> Drained:
    """`pulse consume --time-budget ...` over the backlog, as a user types it."""
    command = [str(PULSE), "consume", "--time-budget", str(BUDGET_SECONDS)]
    started = time.perf_counter()
    finished = subprocess.run(
        command,
        cwd=REPO,
        env=_env(settings, target),
        capture_output=True,
        text=True,
        timeout=STOP_SECONDS,
        check=False,
    )
    seconds = time.perf_counter() - started
    last = finished.stdout.strip().splitlines()[-1:] or [""]
    found = THROUGHPUT.search(last[0])
    if finished.returncode != 0 or found is None:
        tail = (finished.stdout + finished.stderr)[-2_000:]
        raise RuntimeError(f"pulse consume exited {finished.returncode}: {tail}")
    records, rate = (int(group.replace(",", "")) for group in found.groups())
    return Drained(records, seconds, float(rate))


def _await_end(client: SyncPrefectClient, run_id: UUID) -> str:
    deadline = time.monotonic() + STOP_SECONDS
    state = "SCHEDULED"
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        state = run.state.type.value if run.state else "SCHEDULED"
        if state in ENDED:
            return state
        time.sleep(0.5)  # polling the API for the run's state: there is no push to wait on
    raise TimeoutError(f"the served drain run was still {state} after {STOP_SECONDS:g} s")


def _report(client: SyncPrefectClient, run_id: UUID) -> tuple[int, float]:
    """Records and records/s from the run's 'consumer-run' artifact (what the UI shows)."""
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    rows = {
        name: int(value.replace(",", ""))
        for artifact in artifacts
        if artifact.key == "consumer-run"
        for name, value in ARTIFACT_ROW.findall(str(artifact.data))
    }
    return rows["records"], float(rows["throughput"])


def served_drain(settings: Settings, target: Target) -> Drained:
    """One run of the served drain deployment, triggered as `pulse trigger` does, caught-up
    stop instead of the schedule's window."""
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs, "serve.log")
        serve = subprocess.Popen(
            [sys.executable, "-m", "deployments.serve", "--paused"],
            cwd=REPO,
            env=_env(settings, target),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return _run_once(settings, target.topic, serve)
        except Exception as exc:
            raise RuntimeError(f"{exc!r}; the runner said: {log.read_text()[-2_000:]}") from exc
        finally:
            serve.terminate()
            serve.wait(timeout=60)


def _await_registered(client: SyncPrefectClient, serve: subprocess.Popen[bytes]) -> None:
    """Until the runner has registered the drain deployment (a new Prefect server has none)."""
    deadline = time.monotonic() + STOP_SECONDS
    while serve.poll() is None and time.monotonic() < deadline:
        try:
            client.read_deployment_by_name(DRAIN)
        except ObjectNotFound:
            time.sleep(0.5)  # polling the API: there is no push to wait on
        else:
            return
    raise RuntimeError(f"the runner exited {serve.returncode} before serving {DRAIN}")


def _run_once(settings: Settings, topic: str, serve: subprocess.Popen[bytes]) -> Drained:
    parameters = {
        "window_seconds": None,
        "stop_when_caught_up": True,
        "time_budget_seconds": BUDGET_SECONDS,
        "topic": topic,
    }
    with prefect_api(settings), get_client(sync_client=True) as client:
        _await_registered(client, serve)
        run = run_deployment(DRAIN, parameters=parameters, timeout=0, as_subflow=False)
        if not isinstance(run, FlowRun):  # typed sync-or-async; outside an event loop it is sync
            raise TypeError("run_deployment must be called outside an event loop")
        state = _await_end(client, run.id)
        if state != "COMPLETED":
            raise RuntimeError(f"the served drain run ended {state}")
        history = {s.type.value: s.timestamp for s in client.read_flow_run_states(run.id)}
        seconds = (history["COMPLETED"] - history["PENDING"]).total_seconds()
        records, rate = _report(client, run.id)
    return Drained(records, seconds, rate)
