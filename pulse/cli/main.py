"""The `pulse` command: one entry point for the local stack and, later, the pipeline."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from pulse.alerts.rules import RuleError
from pulse.cli import alerts, config, ledger, stack, trigger
from pulse.cli.consume import consume
from pulse.cli.generate import generate
from pulse.cli.maintain import maintain
from pulse.cli.run import run
from pulse.config import SettingsError
from pulse.preflight import ServiceUnavailableError
from pulse.stack.prerequisites import MissingPrerequisiteError
from pulse.store.migrations import UnfinishedFlushError
from pulse.store.writes import ResolveError

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
app.add_typer(ledger.app, name="ledger")
app.command()(run)
app.command()(generate)
app.command()(consume)
app.command()(maintain)

# Mistakes a user can fix: one line naming what to change, no traceback.
FIXABLE = (
    SettingsError,
    ServiceUnavailableError,
    RuleError,
    MissingPrerequisiteError,
    ResolveError,
    UnfinishedFlushError,
)


def main() -> None:
    """The `pulse` entry point."""
    try:
        app()
    except FIXABLE as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
