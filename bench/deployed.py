"""The system as deployed: the served deployments running for minutes, watched as a user would.

If `make run` is running, its pipeline is measured as it is. Otherwise this starts the served
deployments itself (`python -m deployments.serve`) on a topic, database and consumer group of
its own, and stops them at the end. After a warm-up (the first counted event), every
`--every` seconds it reads:

- the pipeline lag as the dashboard reads it (pulse/store/reads.py: the age of the oldest
  record not counted yet, and how many wait): its percentiles are the freshness;
- the topic's end offsets: records produced per 30-s window, against the configured rate.

At the end it counts the scheduled runs of the stream and drain deployments by final state
(Prefect API), and the alerts and dead letters the run produced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
)

from bench.common import console, percentile, report, stop_cleanly_on_sigterm
from pulse.config import Settings, env_name, load_settings
from pulse.kafka.clients import delete_topic, ensure_topic
from pulse.kafka.lag import LagReader, PipelineLag
from pulse.prefect_api import prefect_api
from pulse.stack import services
from pulse.store import reads
from pulse.store.client import database, mongo_client
from pulse.store.schema import ALERTS, DEAD_LETTERS

REPO = Path(__file__).resolve().parents[1]
SCHEDULED = ("generate-interactions/stream", "aggregate-interactions/drain")
ENDED = {"COMPLETED", "CANCELLED", "FAILED", "CRASHED"}
CAUGHT_UP_SECONDS = 3.0


def _serve(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        env_name(("kafka", "topic")): settings.kafka.topic,
        env_name(("kafka", "consumer_group")): settings.kafka.consumer_group,
        env_name(("mongo", "database")): settings.mongo.database,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "deployments.serve"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _run_states(settings: Settings, since: datetime, until: datetime) -> dict[str, Counter[str]]:
    """Final states of the scheduled runs due in [since, until), per deployment."""
    states: dict[str, Counter[str]] = {}
    with prefect_api(settings), get_client(sync_client=True) as client:
        for name in SCHEDULED:
            deployment = client.read_deployment_by_name(name)
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=since, before_=until)
                ),
            )
            states[name] = Counter(
                run.state.type.value if run.state else "NONE" for run in runs if run.auto_scheduled
            )
    return states


RATE_WINDOW = 30.0
"""Seconds over which the topic's growth is held against the rate. The generator sends one
burst per interval, so a 5-s sample interval holds four, five or six bursts by phase alone."""


def window_rates(points: list[tuple[float, int]], seconds: float) -> list[float]:
    """Records per second over consecutive windows of at least `seconds`, from (time, records
    produced so far) points; a last, shorter window is left out."""
    rates: list[float] = []
    if not points:
        return rates
    start = points[0]
    for point in points[1:]:
        if point[0] - start[0] >= seconds:
            rates.append((point[1] - start[1]) / (point[0] - start[0]))
            start = point
    return rates


def measure(settings: Settings, minutes: float, every: float) -> dict[str, Any]:
    """Watch the running pipeline of `settings` for `minutes`; return the figures."""
    rate = settings.generator.batch_size / max(settings.generator.interval_seconds, 1e-9)
    rate *= settings.generator.speed_multiplier
    topic = settings.kafka.topic
    with mongo_client(settings.mongo) as client, closing(LagReader(settings.kafka)) as reader:
        db = database(client, settings.mongo)

        def lag() -> PipelineLag:
            return reader.lag(reads.stored_offsets(db, topic), topic)

        # Warm-up: new events counted, and any backlog (e.g. from a restart) worked off.
        counted = (reads.totals(db) or reads.Totals()).events
        warmup = time.monotonic() + 300
        while (reads.totals(db) or reads.Totals()).events <= counted or (
            lag().seconds > CAUGHT_UP_SECONDS
        ):
            if time.monotonic() > warmup:
                raise RuntimeError("not counting and caught up within 300 s: is it served?")
            time.sleep(1)
        console.print(f"counting and caught up; measuring for {minutes:g} min")
        started_at = datetime.now(UTC)
        samples: list[tuple[float, float, int, int]] = []
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            tick = time.monotonic()
            now = lag()
            produced = int(now.partitions["end_offset"].sum())
            samples.append((tick, now.seconds, now.records, produced))
            time.sleep(max(0.0, every - (time.monotonic() - tick)))
        ended_at = datetime.now(UTC)
        alerts = list(db[ALERTS].find({"fired_at": {"$gte": started_at - timedelta(minutes=10)}}))
        dead = db[DEAD_LETTERS].count_documents({})

    # Runs due inside the period and over by its end (a run works one interval after it is due).
    states = _run_states(settings, started_at, ended_at - timedelta(seconds=150))
    lags = [seconds for _, seconds, _, _ in samples]
    rates = window_rates([(tick, produced) for tick, _, _, produced in samples], RATE_WINDOW)
    elapsed = samples[-1][0] - samples[0][0]
    return {
        "minutes": minutes,
        "samples": len(samples),
        "freshness_p50": percentile(lags, 0.50),
        "freshness_p95": percentile(lags, 0.95),
        "freshness_p99": percentile(lags, 0.99),
        "freshness_max": max(lags),
        "lag_records_max": max(records for _, _, records, _ in samples),
        "configured_rate": rate,
        "achieved_rate": (samples[-1][3] - samples[0][3]) / elapsed if elapsed else 0.0,
        "share_of_time_at_rate": sum(r >= 0.95 * rate for r in rates) / len(rates) if rates else 0,
        "runs": {name: dict(counter) for name, counter in states.items()},
        "runs_not_completed": sum(
            n
            for counter in states.values()
            for state, n in counter.items()
            if state in ENDED - {"COMPLETED"}
        ),
        "alerts_fired": len(alerts),
        "alerts_resolved": sum(1 for alert in alerts if alert.get("resolved_at")),
        "dead_letters": dead,
        "samples_lag": [
            {"t": round(tick - samples[0][0], 1), "seconds": round(lag, 2), "records": records}
            for tick, lag, records, _ in samples
        ],
    }


def main(
    minutes: Annotated[float, typer.Option(help="How long to measure, after the warm-up.")] = 10,
    every: Annotated[float, typer.Option(help="Seconds between samples.")] = 5.0,
) -> dict[str, Any]:
    """Measure the served pipeline; write bench/results/deployed.json."""
    stop_cleanly_on_sigterm()
    settings = load_settings()
    serving = services.app_pidfile(settings, "serve").read() is not None
    serve = None
    if serving:
        console.print("measuring the pipeline `make run` serves")
    else:
        tag = uuid.uuid4().hex[:8]
        settings = load_settings(
            kafka={"topic": f"bench-deployed-{tag}", "consumer_group": f"bench-deployed-{tag}"},
            mongo={"database": f"bench_deployed_{tag}"},
        )
        ensure_topic(settings.kafka)
        log = settings.stack.state_dir / "logs" / "bench-deployed-serve.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        console.print(f"serving the deployments on topic {settings.kafka.topic} (log: {log})")
        serve = _serve(settings, log)
    try:
        result = measure(settings, minutes, every)
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=60)
            delete_topic(settings.kafka, settings.kafka.topic)
            with mongo_client(settings.mongo) as client:
                client.drop_database(settings.mongo.database)
    row = {
        "freshness p50 (s)": result["freshness_p50"],
        "p95 (s)": result["freshness_p95"],
        "p99 (s)": result["freshness_p99"],
        "max (s)": result["freshness_max"],
        "generator rate": f"{result['achieved_rate']:,.0f} / {result['configured_rate']:,.0f}",
        "time at rate": f"{result['share_of_time_at_rate']:.0%}",
        "runs not completed": result["runs_not_completed"],
        "alerts fired": result["alerts_fired"],
    }
    report("deployed", [row], {"result": result})
    for name, counts in result["runs"].items():
        console.print(f"{name}: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    return result


if __name__ == "__main__":
    typer.run(main)
