"""Update commands are bounded by encoded size as well as by count."""

from __future__ import annotations

import bson
import pytest

from pulse.store.statements import Statement
from pulse.store.writes import CHUNK_BYTES, STATEMENT_BYTES, StatementTooLargeError, chunks


def _statement(n: int, payload: int) -> Statement:
    return {"q": {"_id": f"d{n}"}, "u": {"$set": {"x": "x" * payload}}, "upsert": True}


def test_chunks_hold_at_most_the_byte_limit_and_every_statement_once() -> None:
    statements = [_statement(n, 50_000) for n in range(40)]
    got = list(chunks(statements, max_count=1_000, max_bytes=200_000))
    assert [s for chunk in got for s in chunk] == statements
    assert all(sum(len(bson.encode(s)) for s in chunk) <= 200_000 for chunk in got)
    assert len(got) == 14  # three 50 kB statements per chunk, and one left over


def test_chunks_hold_at_most_the_count_limit() -> None:
    got = list(chunks([_statement(n, 1) for n in range(2_500)], max_count=1_000))
    assert [len(chunk) for chunk in got] == [1_000, 1_000, 500]


def test_a_catch_up_flush_of_a_thousand_minute_sketches_fits_in_commands() -> None:
    sketch = {f"users_hll.r{i}": 7 for i in range(1_024)} | {
        f"items_hll.r{i}": 5 for i in range(1_024)
    }
    statements = [
        {"q": {"_id": f"m{n}"}, "u": {"$max": sketch}, "upsert": True} for n in range(1_000)
    ]
    got = list(chunks(statements))
    assert len(got) > 1
    assert all(sum(len(bson.encode(s)) for s in chunk) <= CHUNK_BYTES for chunk in got)


def test_a_statement_larger_than_a_command_is_refused_with_its_id() -> None:
    with pytest.raises(StatementTooLargeError, match="'d0'"):
        list(chunks([_statement(0, STATEMENT_BYTES)]))
