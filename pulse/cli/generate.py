"""`pulse generate`: run the generator against Kafka without Prefect, with a live progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pulse.cli.options import model_options
from pulse.config import load_settings
from pulse.generate.params import GeneratorParams
from pulse.generate.run import GeneratorRun, RunSummary

console = Console()


@model_options(GeneratorParams, console)
def generate(
    params: GeneratorParams,
    ground_truth: Annotated[
        Path | None, typer.Option(help="Write what was sent (JSON) to this file.")
    ] = None,
) -> None:
    """Produce simulated interactions at a controlled rate (Ctrl-C stops after a flush)."""
    settings = load_settings()
    try:
        run = GeneratorRun.planned(settings, params, ground_truth_path=ground_truth)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "parameters"
            console.print(f"[red]error:[/red] {field}: {error['msg']}")
        raise typer.Exit(2) from None
    plan = run.plan
    console.print(
        f"run [bold]{run.run_id}[/bold] seed {run.seed}: bursts of {plan.batch_size:,} "
        f"every {plan.interval_seconds:g} s to [bold]{run.topic}[/bold] "
        f"on {settings.kafka.bootstrap_servers}"
    )
    progress = Progress(
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events · {task.fields[rate]:>9,.0f} events/s"),
        TimeElapsedColumn(),
        console=console,
    )
    interrupted = False
    with run, progress:
        bar = progress.add_task("events", total=plan.total_events, rate=0.0)
        try:
            for slot in run.slots():
                report = run.send(slot)
                sent = slot.first_seq + slot.count
                rate = sent / max(run.pacer.elapsed(), 1e-9)
                progress.update(bar, advance=report.events + report.malformed, rate=rate)
        except KeyboardInterrupt:
            interrupted = True
            console.print("[yellow]interrupted: delivering what was queued…[/yellow]")
        summary = run.finish()
    _print_summary(summary, interrupted)
    if summary.failed or summary.undelivered:
        raise typer.Exit(1)


def _print_summary(summary: RunSummary, interrupted: bool) -> None:
    state = "[yellow]interrupted[/yellow]" if interrupted else "[green]done[/green]"
    console.print(
        f"{state}: {summary.events:,} events (+{summary.malformed:,} malformed) in "
        f"{summary.bursts:,} bursts, {summary.delivered:,} delivered, {summary.failed:,} failed, "
        f"{summary.achieved_rate:,.0f} records/s over {summary.elapsed_seconds:.1f} s"
    )
    if summary.fell_behind and summary.requested_rate:
        console.print(
            f"[yellow]fell behind: requested {summary.requested_rate:,.0f} records/s, achieved "
            f"{summary.achieved_rate:,.0f}; the broker or this machine is the limit[/yellow]"
        )
    if summary.ground_truth_path:
        console.print(f"ground truth written to {summary.ground_truth_path}")
