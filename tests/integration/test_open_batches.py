"""Unfinished batches are found through open-batch markers, never by scanning the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.database import Database

from pulse.ingest.batch import OffsetRange
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.schema import LEDGER, OPEN_BATCHES

pytestmark = pytest.mark.integration

RANGES = [OffsetRange(0, 0, 9)]


def test_markers_follow_the_ledger_and_stale_ones_are_ignored(mongo_db: Database[Document]) -> None:
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)
    assert [e["_id"] for e in writes.unfinished_batches(mongo_db, "t", [0])] == ["t/p0:0-9"]
    writes.ledger_fail(mongo_db, "t/p0:0-9", "boom")
    assert [e["status"] for e in writes.unfinished_batches(mongo_db, "t")] == ["failed"]
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)  # the retry
    writes.ledger_finish(mongo_db, "t/p0:0-9", {})
    assert writes.unfinished_batches(mongo_db, "t") == []
    assert mongo_db[OPEN_BATCHES].count_documents({}) == 0

    # A crash between marker and entry leaves a marker alone: ignored, and removed once it is
    # older than a begin can take (or written before markers carried their time).
    old = datetime.now(UTC) - writes.MARKER_GRACE - timedelta(seconds=1)
    mongo_db[OPEN_BATCHES].insert_one({"_id": "t/p0:10-19", "token": "x", "opened_at": old})
    mongo_db[OPEN_BATCHES].insert_one({"_id": "t/p0:20-29", "open": True})
    assert writes.unfinished_batches(mongo_db, "t") == []
    assert mongo_db[OPEN_BATCHES].count_documents({}) == 0


def test_an_entry_being_begun_while_another_member_reads_the_markers_stays_found(
    mongo_db: Database[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another member (taking partitions over, or starting up) reads the markers between this
    one's marker and its entry: the marker stays, so the entry is replayed if its writer dies."""
    seen: list[list[dict[str, Any]]] = []
    filed = writes.file_in_timeline

    def read_between(*args: Any) -> None:  # the step between the marker and the entry
        seen.append(writes.unfinished_batches(mongo_db, "t"))
        filed(*args)

    monkeypatch.setattr(writes, "file_in_timeline", read_between)
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)  # then its writer dies
    assert seen == [[]]  # not yet an entry: nothing to replay, and its marker is kept
    assert [e["_id"] for e in writes.unfinished_batches(mongo_db, "t", [0])] == ["t/p0:0-9"]


def test_a_marker_opened_again_after_it_was_read_as_done_is_kept(
    mongo_db: Database[Document],
) -> None:
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)
    writes.ledger_finish(mongo_db, "t/p0:0-9", {})
    # A marker left behind as done (its writer died after finishing the entry, before removing
    # the marker), read by one member while another begins the same entry again.
    writes.mark_open(mongo_db, "t/p0:0-9")
    markers = list(mongo_db[OPEN_BATCHES].find())
    entries = {entry["_id"]: entry for entry in mongo_db[LEDGER].find()}  # read as applied
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)  # begun again meanwhile
    writes._settle_markers(mongo_db, markers, entries)
    assert [e["_id"] for e in writes.unfinished_batches(mongo_db, "t")] == ["t/p0:0-9"]
