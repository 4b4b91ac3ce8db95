"""`pulse config show|example`: the effective settings, and the documented .env template."""

from __future__ import annotations

import orjson
import typer
from pydantic import SecretStr
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
            table.add_row(env_name((section, field)), shown(value))
    Console().print(table)


def shown(value: object) -> str:
    """A setting's value as it can be printed: maps as JSON, secrets as asterisks."""
    if isinstance(value, dict):
        masked = {
            key: str(item) if isinstance(item, SecretStr) else item for key, item in value.items()
        }
        return orjson.dumps(masked, default=str).decode()
    return str(value)


@app.command()
def example() -> None:
    """Print a .env template listing every setting with its description and default."""
    typer.echo(env_example(), nl=False)
