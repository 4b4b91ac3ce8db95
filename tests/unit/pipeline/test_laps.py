"""Laps: the seconds of each named step, summed when a step repeats."""

from __future__ import annotations

import itertools

import pytest

from pulse.pipeline.laps import Laps


def test_each_step_sums_its_blocks_in_first_seen_order() -> None:
    ticks = itertools.count(0.0, 0.5)  # every clock read is half a second after the last
    laps = Laps(clock=lambda: next(ticks))
    with laps("ledger"):
        pass
    with laps("replays"):
        pass
    with laps("ledger"):
        pass
    assert laps.seconds == {"ledger": 1.0, "replays": 0.5}
    assert str(laps) == "ledger 1.00, replays 0.50"


def test_a_step_that_raises_still_counts() -> None:
    ticks = itertools.count(0.0, 2.0)
    laps = Laps(clock=lambda: next(ticks))
    with pytest.raises(RuntimeError), laps("kafka"):
        raise RuntimeError("broker gone")
    assert laps.seconds == {"kafka": 2.0}
