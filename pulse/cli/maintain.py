"""`pulse maintain`: one retention pass over what grows with time."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from pulse.config import load_settings
from pulse.store import retention
from pulse.store.client import database, mongo_client

console = Console()


def maintain() -> None:
    """Remove what is past its retention (PULSE_RETENTION_*): finished ledger entries, dead
    letters, alerts, per-minute detail; roll up the days before today for the Users page.
    Safe to stop and run again at any point."""
    settings = load_settings()
    now = datetime.now(UTC)
    with mongo_client(settings.mongo) as client:
        db = database(client, settings.mongo)
        passes = retention.maintain(db, settings.retention, now)
    rows = [pruned.row() for pruned in passes]
    table = Table(*rows[0])
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else v for v in row.values()))
    console.print(table)
