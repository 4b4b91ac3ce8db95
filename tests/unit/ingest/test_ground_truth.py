"""Ground truth: exact counts of what was sent, across bursts, and its JSON file."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl

from pulse.ingest.ground_truth import GroundTruth

MINUTE = 1_795_737_600_000  # 2026-11-27T00:00Z


def _events(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["user_id", "item_id", "interaction_type", "timestamp"], orient="row"
    )


def test_counts_add_up_across_bursts() -> None:
    truth = GroundTruth()
    truth.add(_events([("u1", "i1", "view", MINUTE), ("u2", "i1", "click", MINUTE + 59_999)]))
    truth.add(_events([("u1", "i2", "view", MINUTE + 60_000)]), malformed=3, late=1)
    summary = truth.to_dict()
    assert summary["events"] == 3
    assert summary["malformed"] == 3 and summary["late"] == 1
    assert summary["by_user"] == {"u1": 2, "u2": 1}
    assert summary["by_item"] == {"i1": 2, "i2": 1}
    assert summary["by_type"] == {"click": 1, "view": 2}
    assert summary["by_minute"] == {
        "2026-11-27T00:00Z": {"view": 1, "click": 1},
        "2026-11-27T00:01Z": {"view": 1},
    }


def test_many_bursts_are_compacted_without_changing_counts() -> None:
    truth = GroundTruth()
    for n in range(200):
        truth.add(_events([(f"u{n % 7}", "i1", "view", MINUTE)]))
    assert dict(truth.counts("user_id").iter_rows()) == {
        f"u{k}": 29 if k < 4 else 28 for k in range(7)
    }


def test_written_file_round_trips(tmp_path: Path) -> None:
    truth = GroundTruth()
    truth.add(_events([("u1", "i1", "purchase", MINUTE)]))
    path = tmp_path / "deep" / "truth.json"
    truth.write(path)
    assert orjson.loads(path.read_bytes()) == truth.to_dict()


def test_empty_truth_is_all_zero() -> None:
    summary = GroundTruth().to_dict()
    assert summary["events"] == 0 and summary["by_user"] == {} and summary["by_minute"] == {}
