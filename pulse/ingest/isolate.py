"""Judge a batch even when judging raises on some of its records (pure).

Validation gives a verdict per record and is meant never to raise (tests/intake_checks.py
holds it to that on generated and fuzzed input). Should a record still make validation or
counting raise, the batch is halved until the records that raise alone are found; they
become dead letters with the error as their reason, and the rest is judged as usual. The
search depends only on the records, so a replay of the batch finds the same records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from pulse.ingest.aggregate import Counts, count
from pulse.ingest.validate import DEAD_SCHEMA, ValidationRules, Verdict, validate

log = logging.getLogger(__name__)

MAX_ISOLATED = 64
"""More records than this raising in one batch is not a few bad records but a fault of
Pulse or its setup: the error is raised, and the batch retried like any failed one."""
ISOLATED = "could not be processed"
"""The start of an isolated record's reason."""


@dataclass(frozen=True)
class Judged:
    """A batch's verdict and counts, and the seconds each took."""

    verdict: Verdict
    counts: Counts
    validate_seconds: float
    count_seconds: float


def judge(records: pl.DataFrame, rules: ValidationRules) -> Judged:
    """The verdict and the counts of a batch's records (RECORD_SCHEMA)."""
    try:
        return _judge(records, rules)
    except MemoryError:
        raise
    except Exception:
        found = culprits(records.height, lambda rows: _error(records[rows], rules))
        if not found or len(found) > MAX_ISOLATED or len(found) == records.height > 1:
            raise
    log.error("isolated %d records that raise while judged: %s", len(found), found)
    judged = _judge(_without(records, found), rules)
    verdict = judged.verdict
    isolated = records[[row for row, _ in found]].with_columns(
        pl.Series("reason", [_reason(error) for _, error in found], pl.String),
        pl.lit("", pl.String).alias("field"),
    )
    dead = pl.concat([verdict.dead, isolated.select(DEAD_SCHEMA.names())]).sort(
        "partition", "offset"
    )
    verdict = Verdict(verdict.events, dead, verdict.ignored_fields, len(found))
    return Judged(verdict, judged.counts, judged.validate_seconds, judged.count_seconds)


def refusal(records: pl.DataFrame, reason: str, rules: ValidationRules) -> Judged:
    """Every record a dead letter with `reason`: a batch whose writing failed for what its
    one record holds (pulse/pipeline/isolation.py)."""
    dead = records.with_columns(
        pl.lit(reason, pl.String).alias("reason"), pl.lit("", pl.String).alias("field")
    ).select(DEAD_SCHEMA.names())
    events = validate(records.clear(), rules).events
    verdict = Verdict(events, dead, {}, records.height)
    return Judged(verdict, count(events, rules.interaction_types), 0.0, 0.0)


def culprits(
    size: int, error_of: Callable[[list[int]], BaseException | None]
) -> list[tuple[int, BaseException]]:
    """The rows that fail alone, found by halving, with their errors; rows that only fail
    together with others are not found."""
    found: list[tuple[int, BaseException]] = []
    pending = [list(range(size))]
    while pending:
        rows = pending.pop()
        error = error_of(rows)
        if error is None:
            continue
        if len(rows) == 1:
            found.append((rows[0], error))
            continue
        middle = len(rows) // 2
        pending += [rows[middle:], rows[:middle]]
    return sorted(found, key=lambda pair: pair[0])


def _judge(records: pl.DataFrame, rules: ValidationRules) -> Judged:
    started = time.perf_counter()
    verdict = validate(records, rules)
    validated = time.perf_counter()
    counts = count(verdict.events, rules.interaction_types)
    return Judged(verdict, counts, validated - started, time.perf_counter() - validated)


def _error(records: pl.DataFrame, rules: ValidationRules) -> BaseException | None:
    try:
        _judge(records, rules)
    except MemoryError:
        raise
    except Exception as exc:  # what the search looks for
        return exc
    return None


def _without(records: pl.DataFrame, found: list[tuple[int, BaseException]]) -> pl.DataFrame:
    rows = {row for row, _ in found}
    keep = [row not in rows for row in range(records.height)]
    return records.filter(pl.Series(keep, dtype=pl.Boolean))


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())[:160]
    kind = type(error).__name__
    return f"{ISOLATED} ({kind}: {text})" if text else f"{ISOLATED} ({kind})"
