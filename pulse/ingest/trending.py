"""Trending items: the most interactions over the last minutes, from per-minute top lists (pure).

Each minute keeps a board of candidates for its top K items, `{item: count in the minute}`
(pulse/store/trending.py). Counts within a minute only grow, and each flush offers the
minute's counts of the items it touched, so a board always holds its minute's true top K
with their exact counts (the argument of the all-time leader boards,
pulse/store/leaders.py). Any other item counted at most the K-th largest value in that minute
(nothing, while the board holds fewer than K).

Over a window of minutes an item's count then lies between the sum of its listed counts and
that sum plus the K-th value of each minute it is not listed in. `rank` orders items by the
lower bound and says whether the top n is exact: every count of it known, and no other item
able to reach it. With skewed traffic (a few busy items) it is, and the page says when not.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WINDOWS = (5, 15, 60)
"""Trending windows offered, in minutes (the last 5, 15 and 60 minutes)."""
RISING_MINUTES = 5
"""Rising items compare their last 5 minutes..."""
RISING_BASELINE_MINUTES = 30
"""...with their own rate over the 30 minutes before (the boards of 35 minutes are what the
Items page can read within its budget at 100k items)."""
RISING_MIN_EVENTS = 20
"""Interactions an item needs in the last RISING_MINUTES to be called rising (fewer are
noise: 3 against a baseline of 0.1 is no trend)."""


@dataclass(frozen=True)
class Trending:
    """An item's interactions over a window: at least `events`, at most `most`."""

    item_id: str
    events: int
    most: int

    @property
    def exact(self) -> bool:
        return self.events == self.most


@dataclass(frozen=True)
class Ranking:
    """The items with the most interactions over a window, most first."""

    items: list[Trending]
    exact: bool
    """The list is the true top n, with every count exact."""


def kth_value(board: Mapping[str, int], k: int) -> int:
    """The most an item missing from a minute's `board` can have counted in that minute."""
    if len(board) < k:
        return 0
    return heapq.nlargest(k, board.values())[-1]


def bounds(boards: Sequence[Mapping[str, int]], k: int) -> tuple[dict[str, Trending], int]:
    """Each listed item's bounds over the minutes of `boards`, and the most an item listed
    in none of them can have counted."""
    ceilings = [kth_value(board, k) for board in boards]
    lower: dict[str, int] = {}
    upper: dict[str, int] = {}
    for board, ceiling in zip(boards, ceilings, strict=True):
        for item, count in board.items():
            lower[item] = lower.get(item, 0) + count
            # A listed count above the K-th value is the item's exact count (it is in the top K);
            # one at or below it is a lower bound, and the K-th value the most it can be.
            upper[item] = upper.get(item, 0) + max(count, ceiling) - ceiling
    unlisted = sum(ceilings)
    found = {item: Trending(item, lower[item], upper[item] + unlisted) for item in lower}
    return found, unlisted


def rank(boards: Sequence[Mapping[str, int]], n: int, k: int) -> Ranking:
    """The top `n` items over the minutes of `boards` (ties by id), and whether it is exact."""
    found, unlisted = bounds(boards, k)
    ordered = sorted(found.values(), key=lambda t: (-t.events, t.item_id))
    top, rest = ordered[:n], ordered[n:]
    if not top:
        return Ranking([], exact=unlisted == 0)
    last = top[-1]
    exact = (
        all(t.exact for t in top)
        and all((-other.most, other.item_id) > (-last.events, last.item_id) for other in rest)
        # An item on no board could still enter a list not yet full, or pass its last.
        and (unlisted == 0 if len(top) < n else unlisted < last.events)
    )
    return Ranking(top, exact)


def rising(
    recent: Sequence[Mapping[str, int]],
    before: Sequence[Mapping[str, int]],
    n: int,
    min_events: int,
    k: int,
) -> list[tuple[str, int, float]]:
    """Items busiest in the `recent` minutes against their own rate in the minutes `before`:
    (item, events in the recent minutes, ratio to its rate before, scaled to as many
    minutes), the highest ratios first, for items with at least `min_events` recently. The
    rate before is the most the boards allow (an item missing from a minute's board may have
    counted up to its K-th value there), so an item seldom on the boards does not look
    risen from nothing. Minutes before with no board at all (nothing counted yet: a pipeline
    just started) are left out of the rate."""
    before = [board for board in before if board]
    now = _sums(recent)
    earlier, unlisted = bounds(before, k)
    scale = len(recent) / max(len(before), 1)
    ratios = [
        (item, events, events / max(_most(earlier, unlisted, item) * scale, 1.0))
        for item, events in now.items()
        if events >= min_events
    ]
    return sorted(ratios, key=lambda row: (-row[2], -row[1], row[0]))[:n]


def _most(found: Mapping[str, Trending], unlisted: int, item: str) -> int:
    return found[item].most if item in found else unlisted


def _sums(boards: Sequence[Mapping[str, int]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for board in boards:
        for item, count in board.items():
            sums[item] = sums.get(item, 0) + count
    return sums
