"""Per-minute boards of the busiest items, and the trending items read from them.

A `minute_leaders` document per minute holds candidates for its top BOARD_K items with their
counts in the minute. The entity flush, after writing item x minute figures, reads
back the touched items' counts in their buckets and offers them to their minutes' boards
(`$max`, as the all-time boards: idempotent, so a replay changes nothing it should not). A
trending window then reads one small document per minute (pulse/ingest/trending.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pymongo import UpdateOne
from pymongo.database import Database

from pulse.ingest.trending import Ranking, rank
from pulse.store import leaders
from pulse.store.client import Document
from pulse.store.reads import by_ids, item_minute_figures, minute_ids
from pulse.store.schema import MINUTE_LEADERS, item_minute_id

BOARD_K = 100
"""Items a minute's board holds for certain: twice the page's longest list, so an item ranked
near the 50th in most minutes is still counted exactly over a window."""


def offer(db: Database[Document], touched: Iterable[tuple[str, str]], buckets: int) -> int:
    """Offer the minute counts of the touched (item, minute id) pairs to their minutes'
    boards; returns the documents changed."""
    wanted: dict[str, set[str]] = {}
    for item, minute in touched:
        wanted.setdefault(item_minute_id(item, minute, buckets), set()).add(item)
    counts: dict[str, dict[str, int]] = {}
    for (doc_id, item), figures in item_minute_figures(db, wanted).items():
        counts.setdefault(doc_id.split("|", 1)[0], {})[item] = int(figures.get("total", 0))
    boards = {
        doc["_id"]: doc.get("top", {})
        for doc in by_ids(db, MINUTE_LEADERS, sorted(counts), {"top": 1})
    }
    statements = []
    for minute, minute_counts in sorted(counts.items()):
        board = boards.get(minute, {})
        statements += [
            leaders.leader_update(minute, minute_counts, board, BOARD_K),
            leaders.top_prune(minute, board, min(len(minute_counts), BOARD_K), BOARD_K),
        ]
    requests = [UpdateOne(s["q"], s["u"], upsert=bool(s.get("upsert"))) for s in statements if s]
    if not requests:
        return 0
    result = db[MINUTE_LEADERS].bulk_write(requests, ordered=True)
    return result.modified_count + result.upserted_count


def boards(db: Database[Document], since: datetime, until: datetime) -> list[dict[str, int]]:
    """The boards of the minutes from `since`'s to `until`'s (a minute without one: empty)."""
    ids = minute_ids(since, until)
    found = {doc["_id"]: doc.get("top", {}) for doc in by_ids(db, MINUTE_LEADERS, ids, {"top": 1})}
    return [{item: int(n) for item, n in found.get(minute, {}).items()} for minute in ids]


def trending(db: Database[Document], now: datetime, minutes: int, n: int) -> Ranking:
    """The `n` items with the most interactions in the last `minutes` minutes (now's
    included)."""
    return rank(boards(db, now - timedelta(minutes=minutes - 1), now), n, BOARD_K)
