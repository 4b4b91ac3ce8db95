"""Freshness: how long after an event is produced it is counted in MongoDB.

The generator runs at a steady rate while the consumer runs as deployed (`pulse consume
--follow`, the loop of the aggregate-interactions flow) in its own process. A poller reads
the global document's event count every 50 ms: the k-th event became visible when that count
first reached k, and was produced when the generator had queued k events. The percentiles of
the difference are the freshness.
"""

from __future__ import annotations

import bisect
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.common import console, fresh_topic, percentile, report
from pulse.config import Settings, env_name, load_settings
from pulse.generate.pacing import RatePlan
from pulse.generate.run import GeneratorRun
from pulse.generate.simulate import GeneratorConfig
from pulse.kafka.clients import admin_client, assigned_partitions
from pulse.store.client import mongo_client
from pulse.store.schema import TOTALS, TOTALS_ID

REPO = Path(__file__).resolve().parents[1]


def _wait_for_partitions(settings: Settings, group: str, topic: str, timeout: float = 60) -> None:
    """Until the consumer's group holds every partition of the topic."""
    admin = admin_client(settings.kafka)
    partitions = len(admin.list_topics(topic).topics[topic].partitions)
    deadline = time.monotonic() + timeout
    while (held := assigned_partitions(admin, group)) < partitions:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"consumer holds {held} of {partitions} partitions after {timeout} s"
            )
        time.sleep(0.2)


def measure(
    settings: Settings, rate: int, seconds: float, db_name: str, topic: str
) -> dict[str, Any]:
    env = {
        **os.environ,
        env_name(("kafka", "topic")): topic,
        env_name(("kafka", "consumer_group")): f"bench-{db_name}",
        env_name(("mongo", "database")): db_name,
        env_name(("alerts", "rules_file")): "/nonexistent",
    }
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pulse.cli.main",
            "consume",
            "--follow",
            "--time-budget",
            str(seconds + 120),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    visible: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        with mongo_client(settings.mongo) as client:
            totals = client[db_name][TOTALS]
            while not stop.is_set():
                doc = totals.find_one({"_id": TOTALS_ID}, {"events": 1}) or {}
                visible.append((time.monotonic(), int(doc.get("events", 0))))
                time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    _wait_for_partitions(settings, f"bench-{db_name}", topic)  # before the clock starts
    poller.start()
    produced: list[tuple[float, int]] = []
    interval = 0.1
    plan = RatePlan(
        batch_size=max(1, int(rate * interval)), interval_seconds=interval, duration_seconds=seconds
    )
    with GeneratorRun(settings.kafka, plan, GeneratorConfig(), seed=4, topic=topic) as run:
        for slot in run.slots():
            run.send(slot)
            produced.append((time.monotonic(), run.events))
        summary = run.finish()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not visible or visible[-1][1] < summary.events):
        time.sleep(0.2)
    stop.set()
    poller.join()
    consumer.terminate()
    consumer.wait(timeout=60)

    counts = [count for _, count in visible]
    delays = []
    for produced_at, count in produced:
        index = bisect.bisect_left(counts, count)  # first poll that saw this many events
        if index < len(visible):
            delays.append(visible[index][0] - produced_at)
    caught_up = bool(visible) and visible[-1][1] >= summary.events
    return {
        "rate": rate,
        "achieved_rate": summary.achieved_rate,
        "seconds": seconds,
        "events": summary.events,
        "caught_up": caught_up,
        "p50": percentile(delays, 0.50) if delays else None,
        "p95": percentile(delays, 0.95) if delays else None,
        "p99": percentile(delays, 0.99) if delays else None,
    }


def main(
    rates: Annotated[list[int] | None, typer.Option(help="Steady rates to try (events/s).")] = None,
    seconds: Annotated[float, typer.Option(help="How long each rate runs.")] = 60.0,
) -> dict[str, Any]:
    """Measure freshness at each rate; write bench/results/freshness.json."""
    settings = load_settings()
    rows = []
    for rate in rates or [500, 2_000, 5_000]:
        db_name = f"bench_{uuid.uuid4().hex[:8]}"
        with fresh_topic(settings, "freshness") as topic:
            console.print(f"freshness at {rate:,} events/s for {seconds:g} s")
            result = measure(settings, rate, seconds, db_name, topic)
        with mongo_client(settings.mongo) as client:
            client.drop_database(db_name)
        rows.append(
            {
                "rate (events/s)": rate,
                "achieved": result["achieved_rate"],
                "p50 (s)": result["p50"],
                "p95 (s)": result["p95"],
                "p99 (s)": result["p99"],
                "kept up": "yes" if result["caught_up"] else "no",
            }
        )
    report("freshness", rows, {"seconds": seconds})
    return {"rows": rows}


if __name__ == "__main__":
    typer.run(main)
