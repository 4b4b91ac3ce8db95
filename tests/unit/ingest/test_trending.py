"""Trending items from per-minute boards: every count within its bounds, and a ranking called
exact equal to the true top n, whatever the traffic and however it was cut into flushes."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.ingest.trending import rank, rising
from pulse.store.trending import BOARD_K as K
from pulse.store.trending import merged, pack, unpack


def _offered(board: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    """A minute's board after a flush left `counts` (the touched items' minute counts), as
    pulse/store/trending.py:offer sets it, through its stored string."""
    return unpack(pack(merged(board, counts)))


def _minute(
    rng: random.Random, items: int, events: int, flushes: int, skew: float
) -> tuple[dict[str, int], Counter[str]]:
    """One minute of `events` over `items` items (Zipf-like with `skew`), in `flushes` flushes."""
    weights = [1 / (rank + 1) ** skew for rank in range(items)]
    stream = rng.choices([f"i{n}" for n in range(items)], weights, k=events)
    truth: Counter[str] = Counter()
    board: dict[str, int] = {}
    cuts = sorted(rng.sample(range(1, events), min(flushes - 1, events - 1))) if events > 1 else []
    for begin, end in zip([0, *cuts], [*cuts, events], strict=True):
        truth.update(stream[begin:end])
        board = _offered(board, {item: truth[item] for item in set(stream[begin:end])})
    return board, truth


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=5, max_value=400),
    st.integers(min_value=1, max_value=8),
    st.floats(min_value=0.0, max_value=2.0),
)
def test_counts_stay_within_bounds_and_an_exact_ranking_is_the_true_one(
    seed: int, items: int, flushes: int, skew: float
) -> None:
    rng = random.Random(seed)
    boards, total = [], Counter[str]()
    for _ in range(rng.randint(1, 15)):
        board, truth = _minute(rng, items, rng.randint(1, 600), flushes, skew)
        boards.append(board)
        total.update(truth)
    ranking = rank(boards, 10, K)
    for entry in ranking.items:
        assert entry.events <= total[entry.item_id] <= entry.most
    if ranking.exact:
        true_top = sorted(total.items(), key=lambda pair: (-pair[1], pair[0]))[:10]
        assert [(t.item_id, t.events) for t in ranking.items] == true_top


def test_a_few_busy_items_among_many_rank_exactly() -> None:
    rng = random.Random(7)
    boards, total = [], Counter[str]()
    for _ in range(15):
        board, truth = _minute(rng, 2_000, 3_000, 4, 1.2)
        boards.append(board)
        total.update(truth)
    ranking = rank(boards, 10, K)
    assert ranking.exact
    assert [t.item_id for t in ranking.items] == [
        item for item, _ in sorted(total.items(), key=lambda pair: (-pair[1], pair[0]))[:10]
    ]


def test_flat_traffic_over_more_items_than_a_board_holds_is_not_called_exact() -> None:
    boards = [{f"i{n}": 3 for n in range(K)} for _ in range(5)]
    assert not rank(boards, 10, K).exact  # an item on no board may have 3 a minute too


def test_rising_items_are_busy_now_against_their_own_rate_before() -> None:
    before = [{"steady": 10, "hot": 1}] * 12
    recent = [{"steady": 10, "hot": 40, "quiet": 2}]
    assert rising(recent, before, 5, 5, K) == [("hot", 40, 40.0), ("steady", 10, 1.0)]


def test_minutes_before_anything_was_counted_do_not_lower_the_rate() -> None:
    before: list[dict[str, int]] = [{}] * 20 + [{"steady": 10}] * 10
    assert rising([{"steady": 10}], before, 5, 5, K) == [("steady", 10, 1.0)]


def test_an_item_seldom_on_the_boards_before_is_judged_by_the_most_it_can_have_had() -> None:
    # Full boards of two before: an item missing from them may have had 8 a minute there.
    before = [{"a": 9, "b": 8}] * 10
    recent = [{"a": 9, "b": 8, "new": 16}]
    assert rising(recent, before, 5, 5, k=2) == [("new", 16, 2.0), ("a", 9, 1.0), ("b", 8, 1.0)]
