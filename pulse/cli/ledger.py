"""`pulse ledger list|resolve`: the batches not applied, and what an operator decides of them."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pulse.config import load_settings
from pulse.store import writes
from pulse.store.client import database, mongo_client

app = typer.Typer(help="Ledger entries not applied yet, and resolving them.")
console = Console()


@app.command("list")
def list_unfinished(
    topic: Annotated[str | None, typer.Option(help="Topic (default PULSE_KAFKA_TOPIC).")] = None,
) -> None:
    """Unfinished batches and entity flushes of the topic, with their errors."""
    settings = load_settings()
    with mongo_client(settings.mongo) as client:
        db = database(client, settings.mongo)
        entries = writes.unfinished_batches(db, topic or settings.kafka.topic)
    table = Table("entry", "kind", "status", "records", "error")
    for entry in entries:
        table.add_row(
            entry["_id"],
            entry.get("kind") or "batch",
            entry.get("status", ""),
            f"{entry.get('records', 0):,}",
            (entry.get("error") or "")[:200],
        )
    console.print(table if entries else "Nothing unfinished.")


@app.command()
def resolve(
    entry_id: Annotated[
        str, typer.Argument(help="The ledger entry, as `pulse ledger list` shows.")
    ],
) -> None:
    """Record an unfinished entry's records as lost (Kafka no longer holds them) so that its
    partitions count on after it; shown on the health page and in /metrics."""
    settings = load_settings()
    with mongo_client(settings.mongo) as client:
        entry = writes.resolve_lost(
            database(client, settings.mongo), entry_id, by=f"pulse ledger ({getpass.getuser()})"
        )
    what = "entity flush" if entry.get("kind") else f"batch of {entry.get('records', 0):,} records"
    console.print(f"{entry_id}: {what} recorded as lost; its partitions count on after it.")
