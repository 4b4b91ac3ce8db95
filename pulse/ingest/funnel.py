"""The funnel: interaction types as ordered steps, and the conversion between them (pure).

Counts per type are exact everywhere Pulse keeps them (minutes, hours, days, totals, each
item), so every funnel figure is exact too. A conversion is a ratio of events, e.g. purchases
per view of an item: not of users (a user who views twice and buys once converts 50%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import polars as pl

from pulse.ingest.aggregate import type_column


def steps_frame(counts: Mapping[str, int], steps: Sequence[str]) -> pl.DataFrame:
    """Each step's count, and its conversion from the step before and from the first step
    (null where the step it is divided by counted nothing)."""
    values = [int(counts.get(step, 0)) for step in steps]
    first = values[0] if values else 0
    return pl.DataFrame(
        {
            "step": list(steps),
            "count": values,
            "from_previous": [None]
            + [now / before if before else None for before, now in pairwise(values)],
            "from_first": [value / first if first else None for value in values],
        },
        schema={
            "step": pl.String,
            "count": pl.Int64,
            "from_previous": pl.Float64,
            "from_first": pl.Float64,
        },
    )


def step_counts(frame: pl.DataFrame, steps: Sequence[str]) -> dict[str, int]:
    """The steps' counts summed over a frame of per-period counts (`types.<type>` columns)."""
    return {
        step: int(frame[type_column(step)].sum()) if type_column(step) in frame.columns else 0
        for step in steps
    }


def with_conversion(frame: pl.DataFrame, steps: Sequence[str]) -> pl.DataFrame:
    """The frame (one row per period, item or user, `types.<type>` columns) with
    `conversion`: its last step's count over its first's (null where the first is 0)."""
    first, last = (
        pl.col(type_column(s)) if type_column(s) in frame.columns else pl.lit(0)
        for s in (steps[0], steps[-1])
    )
    return frame.with_columns(
        pl.when(first > 0).then(last / first).otherwise(None).cast(pl.Float64).alias("conversion")
    )


def _count(frame: pl.DataFrame, step: str) -> pl.Expr:
    column = type_column(step)
    return pl.col(column) if column in frame.columns else pl.lit(0)


def ranked_by_conversion(
    frame: pl.DataFrame, steps: Sequence[str], n: int, min_first: int
) -> pl.DataFrame:
    """The `n` rows with the highest conversion among those whose first step counted at
    least `min_first` (fewer events make a ratio noise), highest first."""
    first = type_column(steps[0])
    if first not in frame.columns:
        return with_conversion(frame, steps).head(0)
    return (
        with_conversion(frame, steps)
        .filter(pl.col(first) >= min_first)
        .sort("conversion", first, descending=True)
        .head(n)
    )
