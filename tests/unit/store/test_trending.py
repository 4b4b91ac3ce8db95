"""Minute boards in the database: the larger count of each item is kept, and a board another
consumer set between the read and the write is read again, never overwritten."""

from __future__ import annotations

from typing import Any

import pytest

from pulse.store import reads, trending
from pulse.store.client import Document
from pulse.store.schema import ITEM_MINUTES, MINUTE_LEADERS, item_minute_id
from tests.fakes import MemoryDatabase
from tests.flushes import as_database

BUCKETS = 8
MINUTE = "2026-12-08T01:00Z"


def _counted(memory: MemoryDatabase, counts: dict[str, int]) -> None:
    """The item x minute buckets hold these counts of MINUTE."""
    for item, total in counts.items():
        doc_id = item_minute_id(item, MINUTE, BUCKETS)
        doc = memory[ITEM_MINUTES].find_one({"_id": doc_id}) or {"_id": doc_id, "i": {}}
        doc["i"][item] = {"total": total}
        memory[ITEM_MINUTES].delete_many({"_id": doc_id})
        memory[ITEM_MINUTES].insert_one(doc)


def _board(memory: MemoryDatabase) -> dict[str, int]:
    doc = memory[MINUTE_LEADERS].find_one({"_id": MINUTE}) or {}
    return trending.unpack(doc.get(trending.BOARD))


def test_each_item_keeps_its_larger_count() -> None:
    memory = MemoryDatabase()
    db = as_database(memory)
    _counted(memory, {"i1": 5, "i2": 3})
    trending.offer(db, [("i1", MINUTE), ("i2", MINUTE)], BUCKETS)
    _counted(memory, {"i1": 9})
    trending.offer(db, [("i1", MINUTE)], BUCKETS)
    trending.offer(db, [("i1", MINUTE)], BUCKETS)  # a replay changes nothing
    assert _board(memory) == {"i1": 9, "i2": 3}


def test_a_board_set_meanwhile_is_read_again_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = MemoryDatabase()
    db = as_database(memory)
    _counted(memory, {"i1": 5})
    memory[MINUTE_LEADERS].insert_one({"_id": MINUTE, trending.BOARD: trending.pack({"i2": 9})})
    calls: list[int] = []
    real = reads.by_ids

    def stale_first(*args: Any) -> list[Document]:
        calls.append(1)
        return [] if len(calls) == 1 else real(*args)  # the first read predates i2's board

    monkeypatch.setattr(trending, "by_ids", stale_first)
    trending.offer(db, [("i1", MINUTE)], BUCKETS)
    assert len(calls) == 2
    assert _board(memory) == {"i1": 5, "i2": 9}
