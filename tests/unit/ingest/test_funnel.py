"""Funnel steps and conversions from per-type counts."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from pulse.ingest.funnel import ranked_by_conversion, step_counts, steps_frame, with_conversion

STEPS = ("view", "click", "add_to_cart", "purchase")


def test_each_step_converts_from_the_one_before_and_from_the_first() -> None:
    frame = steps_frame({"view": 1_000, "click": 250, "add_to_cart": 0, "purchase": 5}, STEPS)
    expected = pl.DataFrame(
        {
            "step": list(STEPS),
            "count": [1_000, 250, 0, 5],
            "from_previous": [None, 0.25, 0.0, None],  # nothing to convert from: no ratio
            "from_first": [1.0, 0.25, 0.0, 0.005],
        }
    )
    assert_frame_equal(frame, expected)


def test_steps_are_summed_over_periods_and_a_missing_type_counts_nothing() -> None:
    minutes = pl.DataFrame({"types.view": [3, 4], "types.purchase": [1, 0]})
    assert step_counts(minutes, STEPS) == {"view": 7, "click": 0, "add_to_cart": 0, "purchase": 1}
    assert steps_frame({}, STEPS)["from_first"].null_count() == len(STEPS)


def test_items_rank_by_conversion_above_a_minimum_of_first_step_events() -> None:
    items = pl.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i4"],
            "types.view": [100, 40, 5, 100],
            "types.purchase": [10, 8, 5, 0],
        }
    )
    ranked = ranked_by_conversion(items, STEPS, n=3, min_first=20)
    assert ranked["item_id"].to_list() == ["i2", "i1", "i4"]  # i3's 5 views are too few
    assert ranked["conversion"].to_list() == [0.2, 0.1, 0.0]
    assert with_conversion(items.drop("types.view"), STEPS)["conversion"].null_count() == 4
