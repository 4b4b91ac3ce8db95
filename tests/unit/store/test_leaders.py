"""Leader boards: the statements keep the true top K and every low item, batch after batch."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pytest

from pulse.store.leaders import (
    LOW_CAP,
    TOP_K,
    candidates,
    leader_update,
    low_doc_id,
    low_doc_ids,
    low_updates,
    top_prune,
    top_threshold,
)

Boards = dict[str, dict[str, dict[str, int]]]
"""Documents by _id, each a map of one field (`top` or `ids`) from id to total."""


def _apply(boards: Boards, statement: dict[str, Any] | None) -> None:
    """What MongoDB does with the statement's `$max`, `$set` and `$unset` on dotted paths."""
    if statement is None:
        return
    doc = boards.setdefault(statement["q"]["_id"], {})
    update = statement["u"]
    for path, value in update.get("$max", {}).items():
        field, key = path.split(".", 1)
        current = doc.setdefault(field, {})
        current[key] = max(current.get(key, value), value)
    for path, value in update.get("$set", {}).items():
        field, key = path.split(".", 1)
        doc.setdefault(field, {})[key] = value
    for path in update.get("$unset", {}):
        field, key = path.split(".", 1)
        doc.get(field, {}).pop(key, None)


def test_threshold_is_zero_until_k_candidates_then_the_kth_value() -> None:
    assert top_threshold({f"i{n}": n for n in range(TOP_K - 1)}) == 0
    board = {f"i{n}": n for n in range(1, 3 * TOP_K + 1)}
    assert top_threshold(board) == 2 * TOP_K + 1


def test_only_the_batch_best_at_or_above_the_threshold_are_offered() -> None:
    top = {f"old{n}": 100 for n in range(TOP_K)}
    totals = {"hot": 150, "equal": 100, "cold": 99}
    statement = leader_update("items", totals, top)
    assert statement is not None
    assert statement["u"] == {"$max": {"top.hot": 150, "top.equal": 100}}


def test_an_item_moves_between_the_low_lists_and_leaves_past_the_cap() -> None:
    boards: Boards = {}
    for statement in low_updates("items", {"a": 1, "b": 2}, {"a": 1, "b": 2}):
        _apply(boards, statement)
    assert boards[low_doc_id("items", 1, "a")]["ids"] == {"a": 1}
    for statement in low_updates("items", {"a": 3}, {"a": 2}):
        _apply(boards, statement)
    assert "a" not in boards[low_doc_id("items", 1, "a")]["ids"]
    assert boards[low_doc_id("items", 3, "a")]["ids"] == {"a": 3}
    for statement in low_updates("items", {"a": LOW_CAP + 2}, {"a": 2}):
        _apply(boards, statement)
    assert all("a" not in doc.get("ids", {}) for doc in boards.values())
    assert low_doc_id("items", 2, "b") in low_doc_ids("items", 2)


def test_nothing_to_say_gives_no_statement() -> None:
    top = {f"i{n}": 1_000 for n in range(TOP_K)}
    assert leader_update("users", {"u1": 3}, top) is None


def test_prune_keeps_the_2k_best_once_past_4k() -> None:
    board = {f"i{n}": n for n in range(4 * TOP_K)}
    assert top_prune("items", board, added=0) is None
    statement = top_prune("items", board, added=1)
    assert statement is not None
    dropped = {path.split(".", 1)[1] for path in statement["u"]["$unset"]}
    assert dropped == {f"i{n}" for n in range(2 * TOP_K)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_batches_keep_the_true_top_k_and_every_low_item(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth: dict[str, int] = {}
    boards: Boards = {}
    for _ in range(60):
        touched = rng.zipf(1.3, size=int(rng.integers(1, 400))) % 2_000
        added: dict[str, int] = {}
        for number in touched.tolist():
            added[f"i{number}"] = added.get(f"i{number}", 0) + 1
        for key, count in added.items():
            truth[key] = truth.get(key, 0) + count
        totals = {key: truth[key] for key in added}
        top = dict(boards.get("items", {}).get("top", {}))
        _apply(boards, leader_update("items", totals, top))
        _apply(boards, top_prune("items", top, added=min(len(totals), TOP_K)))
        for statement in low_updates("items", totals, added):
            _apply(boards, statement)

    board = boards["items"]["top"]
    assert len(board) <= 5 * TOP_K
    true_top = heapq.nlargest(TOP_K, truth.values())
    assert sorted((truth[key] for key in board), reverse=True)[:TOP_K] == true_top
    for total in range(1, LOW_CAP + 1):
        listed = {
            key: value
            for doc_id in low_doc_ids("items", total)
            for key, value in boards.get(doc_id, {}).get("ids", {}).items()
        }
        assert listed == {key: t for key, t in truth.items() if t == total}
    assert candidates(board, 5, lowest=False)[:5] == heapq.nlargest(5, board, key=board.__getitem__)
