"""`pulse trigger ...`: start a run of a served deployment, like `prefect deployment run`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from pulse.cli.options import model_options
from pulse.config import load_settings
from pulse.generate.params import GeneratorParams

app = typer.Typer(help="Trigger a run of a deployment served by `make run` (or a work pool).")
console = Console()

Wait = Annotated[bool, typer.Option(help="Wait for the run to finish and exit 1 if it failed.")]


def _given(**options: Any) -> dict[str, Any]:
    """Only the options the user gave; the rest keep the deployment's defaults."""
    return {name: value for name, value in options.items() if value is not None}


def _trigger(deployment: str, parameters: dict[str, Any], wait: bool) -> None:
    # Prefect takes seconds to import: only the commands that talk to it pay for that.
    from prefect.client.schemas.objects import FlowRun  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    from pulse.prefect_api import prefect_api  # noqa: PLC0415

    settings = load_settings()
    with prefect_api(settings):
        run = run_deployment(
            deployment, parameters=parameters, timeout=None if wait else 0, as_subflow=False
        )
    if not isinstance(run, FlowRun):  # typed sync-or-async; outside an event loop it is sync
        raise TypeError("run_deployment must be called outside an event loop")
    ui = settings.prefect.api_url.removesuffix("/").removesuffix("/api")
    console.print(f"{deployment}: flow run [bold]{run.name}[/bold] {run.state_name}")
    console.print(f"  {ui}/runs/flow-run/{run.id}")
    if wait and not (run.state and run.state.is_completed()):
        raise typer.Exit(1)


@app.command()
@model_options(GeneratorParams, console)
def generate(params: GeneratorParams, wait: Wait = False) -> None:
    """Run generate-interactions/manual (alongside the scheduled stream) with these parameters."""
    _trigger(
        "generate-interactions/manual",
        {"params": params.model_dump(mode="json", exclude_unset=True)},
        wait,
    )


@app.command()
def aggregate(
    time_budget: Annotated[float | None, typer.Option(help="Seconds to drain.")] = None,
    until_caught_up: Annotated[bool, typer.Option(help="Stop once nothing is left.")] = True,
    wait: Wait = False,
) -> None:
    """Run aggregate-interactions/drain now (an extra member of the group, outside the windows)."""
    parameters = _given(time_budget_seconds=time_budget, stop_when_caught_up=until_caught_up)
    parameters["window_seconds"] = None  # drain now, not in a window of the schedule
    _trigger("aggregate-interactions/drain", parameters, wait)


@app.command()
def retry(wait: Wait = False) -> None:
    """Run retry-failed-batches/manual: re-apply failed or interrupted micro-batches."""
    _trigger("retry-failed-batches/manual", {}, wait)


@app.command("replay-dead-letters")
def replay_dead_letters(
    reason: Annotated[
        str | None, typer.Option(help="Only dead letters whose reason contains this.")
    ] = None,
    field: Annotated[str | None, typer.Option(help="Only dead letters about this field.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    wait: Wait = False,
) -> None:
    """Run replay-dead-letters/manual for the selected dead letters."""
    parameters = _given(reason_contains=reason, field=field, limit=limit)
    _trigger("replay-dead-letters/manual", parameters, wait)
