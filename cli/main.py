"""The `pulse` command: one entry point for the local stack and, later, the pipeline."""

from __future__ import annotations

import typer

from cli import alerts, config, stack, trigger
from cli.consume import consume
from cli.generate import generate
from cli.run import run

app = typer.Typer(
    name="pulse",
    help="Pulse: real-time user-interaction analytics.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(stack.app, name="stack")
app.add_typer(config.app, name="config")
app.add_typer(trigger.app, name="trigger")
app.add_typer(alerts.app, name="alerts")
app.command()(run)
app.command()(generate)
app.command()(consume)

if __name__ == "__main__":
    app()
