"""Per-minute boards of the busiest items, and the trending items read from them.

A `minute_leaders` document per minute holds candidates for its top BOARD_K items with their
counts in the minute, as one string ('i1=310,i7=122,...'): FerretDB decodes a document field
by field, and the Items page reads up to an hour of boards, so 200 fields a board cost it
four times what a string does. The entity flush, after writing item x minute figures, reads
back the touched items' counts in their buckets, and sets each touched minute's board to
the larger count of each item, as read and as offered, cut to the 2 x BOARD_K largest,
guarded by the board as read (another consumer's write meanwhile refuses it; it is read and
written again, pulse/store/contended.py). A minute's counts only grow, so its true top
BOARD_K are always on the board with their exact counts (pulse/ingest/trending.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from pulse.ingest.trending import Ranking, rank
from pulse.store.client import Document
from pulse.store.contended import write_in_rounds
from pulse.store.reads import by_ids, item_minute_figures, minute_ids
from pulse.store.schema import MINUTE_LEADERS, item_minute_id
from pulse.store.statements import Statement
from pulse.store.writes import upsert_guarded

BOARD_K = 100
"""Items a minute's board holds for certain: twice the page's longest list, so an item ranked
near the 50th in most minutes is still counted exactly over a window."""
BOARD = "top"
"""The field of a board: its candidates as one string."""
_PAIRS = ","
_COUNT = "="


def pack(board: dict[str, int]) -> str:
    """A board as stored: 'item=count' pairs, largest first (ids hold no ',' or '=')."""
    ordered = sorted(board.items(), key=lambda pair: (-pair[1], pair[0]))
    return _PAIRS.join(f"{item}{_COUNT}{count}" for item, count in ordered)


def unpack(stored: Any) -> dict[str, int]:
    """A board from its stored string ('' or missing: empty)."""
    if not isinstance(stored, str) or not stored:
        return {}
    pairs = (pair.rsplit(_COUNT, 1) for pair in stored.split(_PAIRS))
    return {item: int(count) for item, count in pairs}


def merged(board: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    """The board after offering it `counts` (the minute counts of the items a flush touched):
    each item's larger count, cut to the 2 x BOARD_K largest."""
    after = dict(board)
    for item, count in counts.items():
        after[item] = max(after.get(item, 0), count)
    if len(after) <= 2 * BOARD_K:
        return after
    kept = heapq.nlargest(2 * BOARD_K, after.items(), key=lambda pair: (pair[1], pair[0]))
    return dict(kept)


def offer(db: Database[Document], touched: Iterable[tuple[str, str]], buckets: int) -> int:
    """Offer the minute counts of the touched (item, minute id) pairs to their minutes'
    boards; returns the documents changed."""
    wanted: dict[str, set[str]] = {}
    for item, minute in touched:
        wanted.setdefault(item_minute_id(item, minute, buckets), set()).add(item)
    counts: dict[str, dict[str, int]] = {}
    for (doc_id, item), figures in item_minute_figures(db, wanted).items():
        counts.setdefault(doc_id.split("|", 1)[0], {})[item] = int(figures.get("total", 0))
    changed = 0

    def write_round(minutes: list[str]) -> set[str]:
        docs = by_ids(db, MINUTE_LEADERS, minutes, {BOARD: 1})
        stored = {doc["_id"]: doc.get(BOARD) for doc in docs}
        statements: list[Statement] = []
        for minute in minutes:
            before = stored.get(minute)
            after = pack(merged(unpack(before), counts[minute]))
            if after != before:
                guard = {BOARD: before} if minute in stored else {BOARD: {"$exists": False}}
                statements.append(
                    {"q": {"_id": minute, **guard}, "u": {"$set": {BOARD: after}}, "upsert": True}
                )
        nonlocal changed
        result = upsert_guarded(db, MINUTE_LEADERS, statements)
        changed += result.upserted + result.modified
        return set(result.refused_ids)

    write_in_rounds(MINUTE_LEADERS, sorted(counts), write_round)
    return changed


def boards(db: Database[Document], since: datetime, until: datetime) -> list[dict[str, int]]:
    """The boards of the minutes from `since`'s to `until`'s (a minute without one: empty)."""
    ids = minute_ids(since, until)
    found = {doc["_id"]: doc.get(BOARD) for doc in by_ids(db, MINUTE_LEADERS, ids, {BOARD: 1})}
    return [unpack(found.get(minute)) for minute in ids]


def trending(db: Database[Document], now: datetime, minutes: int, n: int) -> Ranking:
    """The `n` items with the most interactions in the last `minutes` minutes (now's
    included)."""
    return rank(boards(db, now - timedelta(minutes=minutes - 1), now), n, BOARD_K)
