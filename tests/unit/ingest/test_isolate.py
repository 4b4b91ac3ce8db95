"""Judging a batch when judging raises on some records (pulse/ingest/isolate.py)."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from pulse.ingest import isolate
from pulse.ingest.aggregate import Counts, count
from pulse.ingest.batch import MicroBatch
from pulse.ingest.isolate import ISOLATED, judge
from pulse.ingest.validate import ValidationRules

KAFKA_TS = 1_795_737_600_000
RULES = ValidationRules(interaction_types=("view",))


def _batch(users: list[str]) -> MicroBatch:
    values: list[bytes | None] = [
        orjson.dumps(
            {"user_id": u, "item_id": "i", "interaction_type": "view", "timestamp": KAFKA_TS}
        )
        for u in users
    ]
    n = len(values)
    keys: list[bytes | None] = [None] * n
    return MicroBatch.from_columns("t", [0] * n, list(range(n)), [KAFKA_TS] * n, keys, values)


@pytest.fixture
def poison_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting raises on any frame holding user 'poison' (a stand-in for a bug that some
    record would trigger)."""

    def counting(events: pl.DataFrame, types: tuple[str, ...]) -> Counts:
        if "poison" in events["user_id"].to_list():
            raise ValueError("cannot count this one")
        return count(events, types)

    monkeypatch.setattr(isolate, "count", counting)


@pytest.mark.usefixtures("poison_counting")
def test_records_that_raise_are_dead_lettered_with_the_error_and_the_rest_counts() -> None:
    judged = judge(_batch(["a", "poison", "b", "c", "poison", "d"]).records, RULES)
    assert judged.verdict.events["user_id"].to_list() == ["a", "b", "c", "d"]
    assert judged.verdict.dead["offset"].to_list() == [1, 4]
    assert judged.verdict.isolated == 2
    (reason,) = set(judged.verdict.dead["reason"].to_list())
    assert reason == f"{ISOLATED} (ValueError: cannot count this one)"
    assert judged.counts.totals["events"].item() == 4


@pytest.mark.usefixtures("poison_counting")
def test_when_every_record_raises_the_error_is_raised() -> None:
    with pytest.raises(ValueError, match="cannot count"):
        judge(_batch(["poison"] * 5).records, RULES)
