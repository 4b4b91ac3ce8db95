"""`pulse consume`: drain the topic into MongoDB without Prefect (one consumer-group member)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulse.cli.signals import stop_on_signals
from pulse.config import load_settings
from pulse.ingest.batch import MicroBatch
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.consumer import consuming
from pulse.pipeline.drain import drain
from pulse.pipeline.failures import retry_transient

console = Console()


def consume(
    time_budget: Annotated[
        float | None,
        typer.Option(help="Seconds to run (default PULSE_CONSUMER_TIME_BUDGET_SECONDS)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="Keep waiting for new events instead of stopping when caught up.")
    ] = False,
    max_batch_events: Annotated[int | None, typer.Option(help="Events per micro-batch.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default PULSE_KAFKA_TOPIC).")] = None,
) -> None:
    """Aggregate micro-batches from Kafka into MongoDB until caught up (or the budget ends)."""
    settings = load_settings()
    budget = time_budget or settings.consumer.time_budget_seconds
    stop = stop_on_signals()
    with consuming(settings, topic=topic) as consumer:
        console.print(
            f"consuming [bold]{consumer.topic}[/bold] as group [bold]{consumer.group}[/bold] "
            f"for up to {budget:g} s"
        )

        def apply(batch: MicroBatch, consume_seconds: float) -> BatchReport:
            report = retry_transient(
                lambda: consumer.process(batch, consume_seconds),
                stop=stop,
                say=lambda line: console.print(f"[yellow]{line}[/yellow]"),
            )
            console.print(
                f"{report.batch_id}: {report.records:,} records, "
                f"{report.dead_lettered:,} dead-lettered, {report.docs_written:,} documents "
                f"in {report.seconds['write']:.2f} s"
            )
            return report

        summary = drain(
            consumer,
            apply,
            time_budget=budget,
            max_batch_events=max_batch_events,
            stop_when_caught_up=not follow,
            stop=stop,
        )
    for replayed in summary.replayed:
        console.print(f"[yellow]replayed unfinished batch {replayed}[/yellow]")
    state = "stopped" if stop.is_set() else "caught up" if summary.caught_up else "budget spent"
    console.print(
        f"[green]{state}[/green]: {summary.batches:,} batches, {summary.records:,} records "
        f"({summary.events_per_second:,.0f}/s), lag {summary.lag}"
    )
