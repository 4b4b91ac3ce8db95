"""`pulse stack up|down|status`: the local services, without Docker."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from pulse.config import load_settings
from pulse.stack import services
from pulse.stack.prerequisites import MissingPrerequisiteError
from pulse.stack.services import ServiceStatus, StackError

app = typer.Typer(help="Start, stop and inspect the local Kafka, MongoDB and Prefect services.")
console = Console()


def _say(message: str) -> None:
    console.print(f"[dim]·[/dim] {message}")


def _table(rows: list[ServiceStatus]) -> Table:
    table = Table("service", "runs", "state", "pid", "address")
    colours = {"running": "green", "external": "cyan", "starting": "yellow", "stopped": "red"}
    for row in rows:
        state = f"[{colours[row.state]}]{row.state}[/]"
        table.add_row(row.name, row.kind, state, str(row.pid or "-"), row.url)
    return table


@app.command()
def up() -> None:
    """Start Kafka, MongoDB (or FerretDB) and Prefect; wait until each answers."""
    settings = load_settings()
    started = time.monotonic()
    try:
        rows = services.up(settings, _say)
    except (StackError, MissingPrerequisiteError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(_table(rows))
    console.print(f"stack ready in {time.monotonic() - started:.1f} s")
    prefect = next(row for row in rows if row.name == "prefect")
    console.print(f"Prefect UI: [bold]{prefect.url}[/bold]")


@app.command()
def down() -> None:
    """Stop the services `up` started (by pid); leave anything else running."""
    services.down(load_settings(), _say)


@app.command()
def status() -> None:
    """Show each service, what runs it, its pid and address."""
    rows = services.status(load_settings())
    console.print(_table(rows))
    if any(row.state in {"stopped", "starting"} for row in rows):
        raise typer.Exit(3)
