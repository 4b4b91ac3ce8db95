"""Counts first (pulse/pipeline/priority.py): an entity flush's next command waits while a
batch's counts are written, and its statements go in short commands."""

from __future__ import annotations

import threading
from typing import cast

from pymongo.database import Database

from pulse.pipeline.priority import CountsFirst
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.schema import MINUTES
from tests.fakes import MemoryDatabase
from tests.waiting import wait_until


def test_a_flush_command_waits_until_the_counts_being_written_are_done() -> None:
    priority = CountsFirst()
    order: list[str] = []

    def flush_command() -> None:
        priority.wait_turn()
        order.append("flush")

    with priority.counting():
        flusher = threading.Thread(target=flush_command)
        flusher.start()
        wait_until(lambda: priority.waiting, timeout=10, what="the flush waiting for its turn")
        order.append("counts")  # the flush is still held back here
    flusher.join(timeout=10)
    assert order == ["counts", "flush"]


def test_with_no_counts_being_written_a_flush_command_goes_at_once() -> None:
    priority = CountsFirst()
    with priority.counting():
        pass
    priority.wait_turn()  # would block for good if the count were left raised
    assert priority.waiting == 0


def test_entity_statements_go_in_commands_of_the_given_size_each_after_its_turn() -> None:
    memory = MemoryDatabase()
    statements = [
        {"q": {"_id": f"i{n}"}, "u": {"$inc": {"total": 1}}, "upsert": True} for n in range(7)
    ]
    turns: list[int] = []
    result = writes.upsert_guarded(
        cast("Database[Document]", memory),
        MINUTES,
        statements,
        max_count=3,
        before_each=lambda: turns.append(memory[MINUTES].count_documents({})),
    )
    # Three commands (3, 3, 1): each turn came before its command's documents were written.
    assert turns == [0, 3, 6]
    assert result.statements == 7 and memory[MINUTES].count_documents({}) == 7
