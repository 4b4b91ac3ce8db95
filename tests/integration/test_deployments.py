"""Prefect deployments on the real Prefect server: served, triggered, on a work pool, and
a database outage in the middle of a consumer run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from pymongo.errors import PyMongoError

from deployments.definitions import DRAIN, RETRY
from flows.aggregate import aggregate_interactions
from flows.retry import retry_failed_batches
from pulse.config import Settings, load_settings
from pulse.stack.mongo_server import MongoServer
from pulse.store import writes
from pulse.store.client import database, mongo_client
from pulse.store.reads import stored_offsets
from pulse.store.schema import LEDGER, TOTALS, TOTALS_ID
from tests.integration.reconcile import (
    assert_matches_truth,
    produce,
    run_pulse,
    subprocess_env,
    use_settings_env,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _run(name: str, parameters: dict[str, Any], timeout: float = 180) -> FlowRun:
    run = run_deployment(name, parameters=parameters, timeout=timeout, as_subflow=False)
    assert isinstance(run, FlowRun)
    return run


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    wait_until(condition, timeout=timeout, what=what, every=1.0)


@pytest.fixture
def alert_route() -> str:
    """PULSE_ALERTS_ROUTE of the served deployments (a test parametrizes it to change it)."""
    return "pulse"


@pytest.fixture
def served(
    pipeline: Settings,
    prefect_api: str,
    tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]]],
    alert_route: str,
    deployment_names: None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m deployments.serve --paused` pointed at the isolated pipeline, its alert
    channel the test's webhook.

    Paused, so that only the runs this test triggers touch its topic.
    """
    env = subprocess_env(
        pipeline,
        PULSE_CONSUMER_TIME_BUDGET_SECONDS="20",
        PULSE_ALERTS_CHANNELS=orjson.dumps({"ops": webhook[0]}).decode(),
        PULSE_ALERTS_ROUTE=alert_route,
        PULSE_METRICS_PORT="0",  # the default port may be `make run`'s
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--paused"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    wanted = {
        "generate-interactions/stream",
        "generate-interactions/manual",
        "aggregate-interactions/drain",
        "retry-failed-batches/manual",
        "replay-dead-letters/manual",
        "resolve-lost-batch/manual",
    }
    started = time.time()

    def registered() -> bool:
        # Registered (or re-registered) by this serve process, not left from an earlier one.
        with get_client(sync_client=True) as client:
            for name in wanted:
                try:
                    deployment = client.read_deployment_by_name(name)
                except ObjectNotFound:
                    return False
                if deployment.updated is None or deployment.updated.timestamp() < started:
                    return False
        return True

    try:
        _wait_for(registered, 120, "the served deployments")
    except AssertionError as exc:
        log.flush()
        tail = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        ended = process.poll()
        raise AssertionError(f"{exc}; serve exit code {ended}; its log ends:\n{tail}") from None
    with get_client(sync_client=True) as client:
        # Runs scheduled while these deployments were served unpaused (by `make run`) would
        # start here and hold the concurrency slot the test's manual runs need.
        ids = [client.read_deployment_by_name(name).id for name in wanted]
        scheduled = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )
        for run in scheduled:
            client.delete_flow_run(run.id)

    def slots_free() -> bool:
        # Runs of an earlier serve process are cancelled when it stops; their deployment
        # concurrency slots are released moments later.
        with get_client(sync_client=True) as client:
            ids = {f"deployment:{client.read_deployment_by_name(name).id}" for name in wanted}
            limits = client.read_global_concurrency_limits(limit=200)
        return all(limit.active_slots == 0 for limit in limits if limit.name in ids)

    _wait_for(slots_free, 120, "free deployment concurrency slots")
    yield process
    process.send_signal(signal.SIGTERM)  # the runner cancels its runs and exits
    process.wait(timeout=60)
    log.close()


def test_served_deployments_run_when_triggered_and_data_lands(
    served: subprocess.Popen[bytes], pipeline: Settings, tmp_path: Path
) -> None:
    truth_path = tmp_path / "truth.json"
    run = _run(
        "generate-interactions/manual",
        {
            "params": {
                "events": 6_000,
                "batch_size": 2_000,
                "interval_seconds": 0.2,
                "seed": 3,
                "malformed_fraction": 0.01,
            },
            "ground_truth_path": str(truth_path),
        },
    )
    assert run.state is not None and run.state.is_completed(), run.state
    truth = orjson.loads(truth_path.read_bytes())

    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)

        def drained() -> bool:
            totals = db[TOTALS].find_one({"_id": TOTALS_ID}) or {}
            return bool(totals.get("events") == truth["events"])

        drain = _run(
            "aggregate-interactions/drain",
            {"time_budget_seconds": 60, "stop_when_caught_up": True, "window_seconds": None},
        )
        assert drain.state is not None and drain.state.is_completed(), drain.state
        assert drained()
        assert_matches_truth(db, truth)

    def run_log() -> list[str]:
        only_drain = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[drain.id]))
        with get_client(sync_client=True) as prefect:
            return [entry.message for entry in prefect.read_logs(log_filter=only_drain)]

    # Pulse's own INFO lines reach the run's log (what a handover cost, for one).
    wait_until(
        run_log,
        timeout=30,
        what="the drain's log shows its partitions' assignment",
        done=lambda lines: any(line.startswith("assigned partitions") for line in lines),
        every=1.0,
    )

    retry = _run("retry-failed-batches/manual", {})
    assert retry.state is not None and retry.state.is_completed(), retry.state

    with get_client(sync_client=True) as prefect:
        for name in ("generate-interactions/stream", "aggregate-interactions/drain"):
            deployment = prefect.read_deployment_by_name(name)
            assert deployment.schedules, f"{name} has a schedule"
            limit = deployment.global_concurrency_limit
            # a run in its window and its successor waiting (pulse/pipeline/schedule_windows.py)
            assert limit is not None and limit.limit == 2, f"{name}: two runs at most"
            assert deployment.concurrency_options is not None
            assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"


def test_prefect_yaml_deploys_to_a_work_pool_and_a_worker_runs_it(
    pipeline: Settings, prefect_api: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    pool = f"pulse-test-{suffix}"
    text = (REPO / "deployments" / "prefect.yaml").read_text()
    text = text.replace("name: pulse-process", f"name: {pool}")
    text = re.sub(r"^- name: (\S+)$", rf"- name: \1-{suffix}", text, flags=re.MULTILINE)
    project = tmp_path / "prefect.yaml"
    project.write_text(text)
    env = subprocess_env(pipeline, PREFECT_API_URL=prefect_api)
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    subprocess.run(
        [*prefect, "work-pool", "create", pool, "--type", "process"], env=env, check=True, cwd=REPO
    )
    deploy = subprocess.run(
        [*prefect, "deploy", "--prefect-file", str(project), "--all"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    worker = subprocess.Popen(
        [*prefect, "worker", "start", "--pool", pool],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = _run(
            f"generate-interactions/manual-{suffix}",
            {"params": {"events": 1_000, "batch_size": 500}},
        )
        assert run.state is not None and run.state.is_completed(), run.state
        assert run.work_pool_name == pool
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        with get_client(sync_client=True) as client:
            for deployment in client.read_deployments():
                if deployment.name.endswith(suffix):
                    client.delete_deployment(deployment.id)
            client.delete_work_pool(pool)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_database_outage_fails_the_run_visibly_and_a_retry_reconciles(
    request: pytest.FixtureRequest,
    pipeline: Settings,
    prefect_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A MongoDB server of its own, so stopping it does not disturb the other tests.
    uri = f"mongodb://127.0.0.1:{_free_port()}"
    settings = load_settings(
        kafka=pipeline.kafka.model_dump(),
        mongo={"uri": uri, "database": "outage", "timeout_ms": 1_000},
        stack={"state_dir": tmp_path / "state", "cache_dir": pipeline.stack.cache_dir.resolve()},
    )
    server = MongoServer(settings.mongo, settings.stack)

    def start() -> None:
        launch = server.prepare(say=lambda _: None)
        server.pidfile.start(launch.command, log_path=server.log_path)
        _wait_for(server.answers, 60, "the database to start")

    start()
    request.addfinalizer(server.pidfile.stop)  # whatever happens below
    use_settings_env(monkeypatch, pipeline)
    monkeypatch.setenv("PULSE_MONGO_URI", uri)
    monkeypatch.setenv("PULSE_MONGO_DATABASE", "outage")
    monkeypatch.setenv("PULSE_MONGO_TIMEOUT_MS", "1000")
    _, truth = produce(settings, tmp_path / "truth.json", events=30_000)

    # The database stops inside the run, right after its first batch is marked applied: a
    # drain that raced a watcher could finish all 30,000 events before the watcher looked.
    finish = writes.ledger_finish
    stopped = threading.Event()

    def finish_then_stop(*args: Any, **kwargs: Any) -> None:
        finish(*args, **kwargs)
        if not stopped.is_set():
            stopped.set()
            server.pidfile.stop()

    monkeypatch.setattr(writes, "ledger_finish", finish_then_stop)
    with pytest.raises(PyMongoError):  # the run fails, naming the database it cannot reach
        aggregate_interactions(
            time_budget_seconds=120, max_batch_events=3_000, retry_delays=[0.5, 0.5]
        )
    assert stopped.is_set(), "the run failed before its first batch was applied"
    monkeypatch.setattr(writes, "ledger_finish", finish)

    start()
    with mongo_client(settings.mongo) as client:
        db = database(client, settings.mongo)
        applied = list(db[LEDGER].find({"status": "applied"}))
        unfinished = list(db[LEDGER].find({"status": {"$ne": "applied"}}))
        # The outage hits between two batches (nothing of the next one written, not even its
        # ledger entry) or inside one (an unfinished entry): both are handled below.
        assert applied, "a batch was applied before the outage"
        stored = stored_offsets(db, pipeline.kafka.topic)
        last_applied: dict[int, int] = {}
        for entry in applied:
            for r in entry["ranges"]:
                last_applied[r["partition"]] = max(
                    last_applied.get(r["partition"], 0), r["last"] + 1
                )
        assert stored == last_applied  # offsets did not advance past what was applied

    retried = retry_failed_batches()
    assert retried["replayed"] == [
        entry["_id"]
        for entry in sorted(unfinished, key=lambda e: min(r["first"] for r in e["ranges"]))
    ]
    aggregate_interactions(time_budget_seconds=120, max_batch_events=3_000)
    with mongo_client(settings.mongo) as client:
        assert_matches_truth(database(client, settings.mongo), truth)


def test_a_drain_past_its_timeout_fails_visibly(
    pipeline: Settings, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings_env(monkeypatch, pipeline)
    hung = aggregate_interactions.with_options(timeout_seconds=3)  # as if it hung for 15 min
    started = time.monotonic()
    state = hung(time_budget_seconds=60, stop_when_caught_up=False, return_state=True)
    assert time.monotonic() - started < 60, "the timeout did not stop the run"
    assert state.is_failed() and state.name == "TimedOut", state
    assert "exceeded timeout" in (state.message or ""), state.message


def automations() -> set[str]:
    with get_client(sync_client=True) as client:
        return {automation.name for automation in client.read_automations()}


def test_serving_creates_the_automations_and_a_failed_drain_starts_a_retry(
    served: subprocess.Popen[bytes], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    wanted = {
        "pulse: retry failed drains",
        "pulse: crash unresponsive runs",
        "pulse: notify failed runs",
    }

    # The serve process creates them right after registering the deployments.
    wait_until(automations, timeout=60, what="the automations", done=wanted.issubset)
    with get_client(sync_client=True) as client:
        retry_id = client.read_deployment_by_name(RETRY).id
        retries = DeploymentFilter(id=DeploymentFilterId(any_=[retry_id]))
        before = {run.id for run in client.read_flow_runs(deployment_filter=retries)}

    failed = _run(DRAIN, {"topic": "not a topic!", "window_seconds": None})  # Kafka refuses it
    assert failed.state is not None and failed.state.is_failed(), failed.state

    def retry_completed() -> list[str]:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=retries)
        return [run.state_name or "" for run in runs if run.id not in before]

    wait_until(
        retry_completed,
        timeout=120,
        what="a retry-failed-batches run started by the automation, completed",
        done=lambda states: "Completed" in states,
        every=1.0,
    )
    _, received = webhook
    notices = wait_until(
        lambda: [n for n in received if failed.name in str(n.get("title", ""))],
        timeout=60,
        what=f"the alert channel told of the failed run {failed.name}",
    )
    assert "Failed" in notices[0]["title"] and "not a topic" in notices[0]["message"]


@pytest.mark.parametrize("alert_route", ["prefect"])
def test_with_the_prefect_route_alerts_reach_their_channel_through_an_automation(
    served: subprocess.Popen[bytes],
    webhook: tuple[str, list[dict[str, Any]]],
    pipeline: Settings,
    alert_route: str,
) -> None:
    url, received = webhook
    wait_until(
        automations,
        timeout=60,
        what="the automation sending alerts to the channel",
        done=lambda names: "pulse: send alerts to ops" in names,
    )
    # The command a user tries the channels with takes the route alerts take.
    env = subprocess_env(
        pipeline,
        PULSE_ALERTS_CHANNELS=orjson.dumps({"ops": url}).decode(),
        PULSE_ALERTS_ROUTE=alert_route,
        PULSE_METRICS_PORT="0",  # the default port may be `make run`'s
    )
    tried = run_pulse("alerts", "test", env=env, timeout=60)
    assert tried.returncode == 0, tried.stdout + tried.stderr
    assert "handed to Prefect" in tried.stdout, tried.stdout
    notices = wait_until(
        lambda: [n for n in received if n.get("title") == "Pulse test alert"],
        timeout=60,
        what="the test alert at the channel, sent by Prefect's automation",
    )
    (notice,) = notices
    assert "pulse alerts test" in notice["message"]
    # Sent by Prefect's server (httpx), not by the command through Apprise.
    assert "apprise" not in notice["_user_agent"].lower(), notice["_user_agent"]
