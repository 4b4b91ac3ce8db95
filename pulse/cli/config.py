"""`pulse config show|example`: the effective settings, and the documented .env template."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from pulse.config import env_example, env_name, load_settings, sections

app = typer.Typer(help="Inspect Pulse's settings (PULSE_* variables and .env).")


@app.command()
def show() -> None:
    """Print the effective settings; secrets are masked."""
    settings = load_settings()
    table = Table("variable", "value")
    for section, _ in sections():
        values = getattr(settings, section).model_dump()
        for field, value in values.items():
            table.add_row(env_name((section, field)), str(value))
    Console().print(table)


@app.command()
def example() -> None:
    """Print a .env template listing every setting with its description and default."""
    typer.echo(env_example(), nl=False)
