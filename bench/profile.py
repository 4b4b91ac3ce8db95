"""Profile the consumer at full speed with pyinstrument; the text report names the top costs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from pyinstrument import Profiler

from bench.common import RESULTS, console, fresh_topic
from bench.consumer import prefill
from pulse.config import load_settings
from pulse.pipeline.consumer import consuming
from pulse.store.client import mongo_client


def main(
    events: Annotated[int, typer.Option(help="Events to consume while profiling.")] = 200_000,
    batch: Annotated[int, typer.Option(help="Micro-batch size.")] = 50_000,
) -> dict[str, Any]:
    """Profile draining `events` events; write bench/results/profile.txt and .html."""
    settings = load_settings()
    db_name = f"bench_{uuid.uuid4().hex[:8]}"
    with fresh_topic(settings, "profile") as topic:
        prefill(settings, topic, events, 10_000, 1_000)
        configured = load_settings(
            kafka=settings.kafka.model_dump() | {"topic": topic, "consumer_group": db_name},
            mongo=settings.mongo.model_dump() | {"database": db_name},
            alerts={"rules_file": Path("/nonexistent")},
        )
        profiler = Profiler(interval=0.002)
        applied = 0
        with consuming(configured) as consumer:
            started = time.perf_counter()
            profiler.start()
            while applied < events:
                found = consumer.poll_batch(batch, 2.0)
                if found is not None:
                    applied += consumer.process(found).records
            profiler.stop()
            seconds = time.perf_counter() - started
    with mongo_client(settings.mongo) as client:
        client.drop_database(db_name)
    RESULTS.mkdir(exist_ok=True)
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (RESULTS / "profile.txt").write_text(text)
    (RESULTS / "profile.html").write_text(profiler.output_html())
    console.print(text[:6_000])
    console.print(
        f"{applied:,} events in {seconds:.1f} s; full report in {RESULTS / 'profile.txt'}"
    )
    return {"events": applied, "seconds": seconds}


if __name__ == "__main__":
    typer.run(main)
