"""`make bench`: every benchmark in one run, then one summary (bench/results/summary.json).

`--smoke` runs each with tiny sizes in seconds, to keep the suite working (CI runs it); its
numbers mean nothing.
"""

from __future__ import annotations

import platform
import shutil
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer

from bench import consumer, dashboard, deployed, freshness, history, producer, profile
from bench.common import RESULTS, console, machine


def main(
    smoke: Annotated[bool, typer.Option(help="Tiny sizes: checks the suite runs.")] = False,
) -> None:
    """Run producer, consumer, freshness, dashboard, history, profile and deployed benchmarks."""
    if shutil.which("kcat") is None:
        console.print("[red]kcat is missing (the producer baseline): apt-get install -y kcat[/red]")
        raise typer.Exit(2)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(),
        "smoke": smoke,
        "machine": machine() | {"node": platform.node()},
    }
    if smoke:
        results["producer"] = producer.main(events=20_000, repeat=1)
        results["consumer"] = consumer.main(
            events=6_000, naive_events=300, users=300, items=50, batch=3_000
        )
        results["freshness"] = freshness.main(rates=[200], seconds=5)
        results["dashboard"] = dashboard.main(
            users=2_000, items=300, repeat=1, database="pulse_bench_smoke"
        )
        results["history"] = history.main(days="", repeat=1, scans=False)
        results["profile"] = profile.main(events=4_000, batch=2_000)
    else:
        results["producer"] = producer.main(events=1_000_000, repeat=3)
        results["consumer"] = consumer.main(
            events=300_000, naive_events=10_000, users=10_000, items=1_000, batch=50_000
        )
        # At 1M users nearly every event touches a user of its own (issue 15's second size);
        # fewer events keep the run to minutes. Buckets as docs/consumer.md advises: users / 400,
        # items / 25.
        results["consumer_1m_users"] = consumer.main(
            events=100_000,
            naive_events=3_000,
            users=1_000_000,
            items=100_000,
            batch=50_000,
            name="consumer-1m-users",
            user_buckets=2_500,
            item_buckets=4_000,
        )
        results["freshness"] = freshness.main(rates=[500, 2_000, 5_000], seconds=60)
        results["dashboard"] = dashboard.main(
            users=1_000_000, items=100_000, repeat=5, database="pulse_bench_dashboard"
        )
        results["history"] = history.main(days="1,7,30", repeat=5)
        results["profile"] = profile.main(events=200_000, batch=50_000)
        results["deployed"] = deployed.main(minutes=10, every=5.0)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("summary-smoke.json" if smoke else "summary.json")
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2, default=str))
    console.print(f"summary written to {path}")


if __name__ == "__main__":
    typer.run(main)
