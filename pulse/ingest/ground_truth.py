"""What the generator sent, counted exactly, so tests and benchmarks can check the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

MINUTE_MS = 60_000
_COMPACT_EVERY = 64  # partial counts kept before they are merged, bounding memory


KEYS = ("user_id", "item_id", "interaction_type", "minute")


@dataclass(frozen=True)
class Tally:
    """One burst's counts, by each key."""

    events: int
    by: dict[str, pl.DataFrame]


def tally(events: pl.DataFrame) -> Tally:
    """Count a frame of events by user, item, type and minute x type."""
    with_minute = events.with_columns(
        (pl.col("timestamp") // MINUTE_MS * MINUTE_MS).alias("minute")
    )
    by = {
        key: with_minute.group_by(_group(key)).agg(pl.len().cast(pl.Int64).alias("count"))
        for key in KEYS
    }
    return Tally(events.height, by)


def _group(key: str) -> list[str]:
    return [key, "interaction_type"] if key == "minute" else [key]


class GroundTruth:
    """Running counts of valid events sent: per user, item, type and event-time minute."""

    def __init__(self) -> None:
        self.events = 0
        self.malformed = 0
        self.late = 0
        self._parts: dict[str, list[pl.DataFrame]] = {key: [] for key in KEYS}

    def add(self, events: pl.DataFrame, malformed: int = 0, late: int = 0) -> None:
        """Count a burst's valid events (and its malformed and late records)."""
        self.add_tally(tally(events), malformed=malformed, late=late)

    def add_tally(self, counts: Tally, malformed: int = 0, late: int = 0) -> None:
        """Add counts made by `tally` (possibly in another thread)."""
        self.events += counts.events
        self.malformed += malformed
        self.late += late
        for key, parts in self._parts.items():
            parts.append(counts.by[key])
            if len(parts) >= _COMPACT_EVERY:
                parts[:] = [_merge(parts, _group(key))]

    def counts(self, key: str) -> pl.DataFrame:
        """Exact counts by `key` (user_id, item_id, interaction_type or minute x type)."""
        return _merge(self._parts[key], _group(key)).sort(_group(key))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: totals and every count."""
        by_minute: dict[str, dict[str, int]] = {}
        for minute, kind, count in self.counts("minute").iter_rows():
            stamp = datetime.fromtimestamp(minute / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
            by_minute.setdefault(stamp, {})[kind] = count
        return {
            "events": self.events,
            "malformed": self.malformed,
            "late": self.late,
            "by_type": dict(self.counts("interaction_type").iter_rows()),
            "by_user": dict(self.counts("user_id").iter_rows()),
            "by_item": dict(self.counts("item_id").iter_rows()),
            "by_minute": by_minute,
        }

    def write(self, path: Path) -> None:
        """Write the summary as JSON (parent folders are created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS))


def _merge(parts: list[pl.DataFrame], group: list[str]) -> pl.DataFrame:
    if not parts:
        schema = {name: pl.String() for name in group} | {"count": pl.Int64()}
        if "minute" in schema:
            schema["minute"] = pl.Int64()
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).group_by(group).agg(pl.col("count").sum())
