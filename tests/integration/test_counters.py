"""Counters past 2^31 on the real server: FerretDB 1.24 adds two 32-bit integers modulo 2^32,
so every `$inc` Pulse sends is 64-bit, and a counter an older database stored as 32-bit is
widened by its next write instead of wrapping to a negative count."""

from __future__ import annotations

import orjson
import pytest
from pymongo.database import Database

from pulse.ingest.batch import MicroBatch
from pulse.ingest.validate import ValidationRules
from pulse.pipeline.apply import BatchWriter
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.schema import SESSIONS, SESSIONS_ALL, TOTALS, TOTALS_ID
from tests.fakes import apply_now

pytestmark = pytest.mark.integration

NEAR = 2**31 - 10
"""A 32-bit counter 10 short of wrapping."""
KAFKA_TS = 1_795_737_600_000


def _batch(events: int) -> MicroBatch:
    values = [
        orjson.dumps(
            {
                "user_id": f"u{n}",
                "item_id": "i1",
                "interaction_type": "view",
                "timestamp": KAFKA_TS + n,
            }
        )
        for n in range(events)
    ]
    return MicroBatch.from_columns(
        "t", [0] * events, list(range(events)), [KAFKA_TS] * events, [b"k"] * events, values
    )


def test_counters_stored_as_32_bit_count_on_past_two_to_the_31(
    mongo_db: Database[Document],
) -> None:
    # As an older database holds them: 32-bit values (pymongo stores small ints so).
    mongo_db[TOTALS].insert_one({"_id": TOTALS_ID, "events": NEAR, "types": {"view": NEAR}})
    mongo_db[SESSIONS].insert_one({"_id": SESSIONS_ALL, "started": NEAR})
    writes.settle_user_buckets(mongo_db, 16)
    rules = ValidationRules(
        interaction_types=("view",), max_record_bytes=1_024, max_age_ms=10**12, max_lead_ms=60_000
    )
    apply_now(BatchWriter(mongo_db, "t", rules, user_buckets=16), _batch(20))

    totals = mongo_db[TOTALS].find_one({"_id": TOTALS_ID})
    assert totals is not None
    assert (totals["events"], totals["types"]["view"]) == (NEAR + 20, NEAR + 20)
    sessions = mongo_db[SESSIONS].find_one({"_id": SESSIONS_ALL})
    assert sessions is not None and sessions["started"] == NEAR + 20  # one session per user
