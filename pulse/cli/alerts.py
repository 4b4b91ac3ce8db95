"""`pulse alerts rules|test|list`: check the rules, try the channels, see recent alerts."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pulse.alerts.engine import Alerting
from pulse.alerts.notifier import notify
from pulse.alerts.rules import RuleError, load_rules_file
from pulse.config import load_settings
from pulse.store import reads
from pulse.store.client import database, mongo_client

app = typer.Typer(help="Alert rules, channels and history.")
console = Console()


@app.command()
def rules() -> None:
    """Validate the rules (file and database) and show the ones in force."""
    settings = load_settings()
    with mongo_client(settings.mongo) as client:
        try:
            db = database(client, settings.mongo)
            # No Alerting.start(), which would also send pending notifications.
            file_rules = load_rules_file(settings.alerts.rules_file)
            alerting = Alerting(db, settings.alerts, file_rules, settings.retention.minutes_kept)
            in_force = alerting.rules()
        except RuleError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        alerting.close()
    for rejection in alerting.rejected:
        console.print(f"[red]skipped: {rejection.reason}[/red]")
    table = Table("id", "metric", "type", "window", "threshold", "cooldown", "severity", "channels")
    for rule in in_force.values():
        table.add_row(
            rule.id,
            rule.metric,
            rule.interaction_type or "all",
            f"{rule.window_minutes} min",
            f"{rule.threshold:g}",
            f"{rule.cooldown_minutes} min",
            rule.severity,
            ", ".join(rule.channels),
        )
    console.print(table)
    if alerting.rejected:
        raise typer.Exit(2)


@app.command()
def test(
    channel: Annotated[
        list[str] | None, typer.Option(help="Only these channels (by name).")
    ] = None,
) -> None:
    """Send a test alert through the configured channels and report each outcome.

    With PULSE_ALERTS_ROUTE=prefect it goes the way alerts go: as an event to Prefect, whose
    automations send it on."""
    settings = load_settings()
    channels = [name for name in settings.alerts.channels if not channel or name in channel]
    if not channels:
        console.print("No channels configured (PULSE_ALERTS_CHANNELS): alerts are only logged.")
        raise typer.Exit(1)
    now = datetime.now(UTC)
    alert = {
        "rule_id": "pulse-test",
        "key": "pulse alerts test",
        "state": "firing",
        "severity": "info",
        "channels": channels,
        "window_start": now,
    }
    # The pulse route sends the test itself; Prefect need not run for that.
    # Prefect takes seconds to import: only the route that talks to it pays for that.
    from pulse.prefect_api import prefect_api  # noqa: PLC0415

    route = prefect_api(settings) if settings.alerts.route == "prefect" else nullcontext()
    with route:
        results = notify(
            alert,
            "Pulse test alert",
            f"Sent by `pulse alerts test` at {now:%Y-%m-%d %H:%M:%S} UTC.",
            settings.alerts,
        )
    handed = "handed to Prefect; its automation sends it on (Prefect UI: Automations, Events)"
    for result in results:
        done = handed if settings.alerts.route == "prefect" else "delivered"
        mark = f"[green]{done}[/green]" if result.ok else f"[red]failed: {result.error}[/red]"
        console.print(f"{result.channel}: {mark}")
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@app.command("list")
def list_alerts(hours: Annotated[float, typer.Option(help="How far back.")] = 24.0) -> None:
    """Alerts fired in the last hours, newest first."""
    settings = load_settings()
    since = datetime.now(UTC) - timedelta(hours=hours)
    with mongo_client(settings.mongo) as client:
        fired = reads.alerts(database(client, settings.mongo), since)  # newest first
    table = Table("fired", "rule", "key", "value", "threshold", "window", "state", "delivery")
    for alert in fired.iter_rows(named=True) if "fired_at" in fired.columns else []:
        table.add_row(
            f"{alert['fired_at']:%H:%M:%S}",
            alert["rule"],
            alert["key"],
            f"{alert['value']:g}",
            f"{alert['threshold']:g}",
            f"{alert['window_start']:%H:%M}",
            alert["state"],
            alert["delivery"] or "",
        )
    console.print(table)
