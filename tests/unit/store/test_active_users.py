"""The Users page's active users: the days before today rolled up read as the days do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from pymongo.database import Database

from pulse.ingest import sketches
from pulse.store import active_users
from pulse.store.client import Document
from pulse.store.schema import DAY_SKETCHES
from tests.fakes import MemoryDatabase


def _db(memory: MemoryDatabase) -> Database[Document]:
    return cast("Database[Document]", memory)


def test_the_days_before_today_rolled_up_give_the_figures_the_days_themselves_give() -> None:
    memory = MemoryDatabase()
    db = _db(memory)
    today = datetime.now(UTC).date()
    for back in range(40):
        day = today - timedelta(days=back)
        users = sketches.registers(f"u{n}" for n in range(back * 10, back * 10 + 300))
        memory[DAY_SKETCHES].insert_one(
            {"_id": f"{day:%Y-%m-%d}", "users_hll": {f"r{i}": r for i, r in users.items()}}
        )
    from_days = active_users.active_users(db, today)
    active_users.roll_up(db, today, datetime.now(UTC))
    memory[DAY_SKETCHES].delete_many({"_id": {"$ne": f"{today:%Y-%m-%d}"}})  # read no more
    assert active_users.active_users(db, today) == from_days
    # A roll-up of another day is not used: the days themselves are read again.
    assert active_users.active_users(db, today + timedelta(days=1)).month < from_days.month
