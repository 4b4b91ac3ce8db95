"""Leader boards: which users and items have the most (and items the fewest) interactions,
kept in small documents so the dashboard never sorts a large entity.

FerretDB runs every sort and every filter other than `_id` as a scan, and decodes documents
slowly in proportion to their size: with 100k items a `sort("total").limit(10)` takes
seconds. So the consumer keeps, in the `leaders` entity:

- `<entity>` with `top`: candidates for the most active, `{id: total}`, raised with
  `$max` (idempotent, order-free). Totals only grow, so after a batch the top K lies within
  the old top K and the ids the batch touched: offering the batch's K largest at or above
  the current K-th value keeps the true top K inside `top`. The map is cut back to
  `2 * TOP_K` when it passes `4 * TOP_K`.
- `items|low|<total>|<bucket>` for totals 1..LOW_CAP: the items with exactly that total,
  spread over LOW_BUCKETS documents by a hash of the id so each stays small. A batch moves
  an item from its old total's document to its new one. Readers walk totals upwards, so
  the items with the fewest interactions are found after reading a few small documents.

With one consumer the boards are exact. With several, an item's reads can interleave with
another member's increments; readers therefore rank candidates by the documents' real
totals and skip entries whose real total has moved on.
"""

from __future__ import annotations

import heapq
import zlib
from typing import Any

from pulse.store.statements import Statement

TOP_K = 50
"""Exact top list length (the dashboard shows up to 50)."""
LOW_CAP = 3
"""Items with at most this many interactions are listed by total."""
LOW_BUCKETS = 32
"""Documents per listed total: each stays small enough to read in milliseconds on FerretDB."""


def top_threshold(top: dict[str, int]) -> int:
    """The smallest total that can still enter the top K (0 while fewer than K are known)."""
    if len(top) < TOP_K:
        return 0
    return heapq.nlargest(TOP_K, top.values())[-1]


def leader_update(entity: str, totals: dict[str, int], top: dict[str, int]) -> Statement | None:
    """The update of `leaders/<entity>` after a batch left `totals` (id → current total)
    on the documents it touched; `top` is the stored map, as read before the batch."""
    threshold = top_threshold(top)
    best = heapq.nlargest(TOP_K, totals.items(), key=lambda pair: pair[1])
    raised = {f"top.{key}": total for key, total in best if total >= threshold}
    if not raised:
        return None
    return {"q": {"_id": entity}, "u": {"$max": raised}, "upsert": True}


def _low_id(entity: str, total: int, bucket: int) -> str:
    return f"{entity}|low|{total}|{bucket}"


def low_doc_ids(entity: str, total: int) -> list[str]:
    """Every document listing the items whose total is `total`, one per bucket."""
    return [_low_id(entity, total, bucket) for bucket in range(LOW_BUCKETS)]


def low_doc_id(entity: str, total: int, key: str) -> str:
    """The document listing `key` while its total is `total` (<= LOW_CAP)."""
    return _low_id(entity, total, zlib.crc32(key.encode()) % LOW_BUCKETS)


def low_updates(entity: str, totals: dict[str, int], added: dict[str, int]) -> list[Statement]:
    """Move each touched id from its old total's list to its new total's (when <= LOW_CAP).

    Removing an id from any list but its current total's is always right, so a replay (whose
    "old" total is off) changes nothing it should not."""
    updates: dict[str, dict[str, dict[str, Any]]] = {}

    def edit(doc_id: str, operator: str, key: str, value: object) -> None:
        updates.setdefault(doc_id, {}).setdefault(operator, {})[f"ids.{key}"] = value

    for key, total in totals.items():
        old = total - added.get(key, 0)
        if 1 <= old <= LOW_CAP and old != total:
            edit(low_doc_id(entity, old, key), "$unset", key, "")
        if total <= LOW_CAP:
            edit(low_doc_id(entity, total, key), "$set", key, total)
    return [
        {"q": {"_id": doc_id}, "u": update, "upsert": True} for doc_id, update in updates.items()
    ]


def top_prune(entity: str, top: dict[str, int], added: int) -> Statement | None:
    """Drop candidates that can no longer reach the top K once `top` (plus `added` new
    candidates) has grown past 4 K: everything below the 2K-th value."""
    if len(top) + added <= 4 * TOP_K:
        return None
    keep = set(heapq.nlargest(2 * TOP_K, top, key=top.__getitem__))
    drop = {f"top.{key}": "" for key in top if key not in keep}
    return {"q": {"_id": entity}, "u": {"$unset": drop}} if drop else None


def candidates(board: dict[str, int], n: int, lowest: bool) -> list[str]:
    """Ids worth fetching for a top (or bottom) `n`: twice as many as needed, since a map
    value may lag the document's total by a concurrent consumer's increment."""
    pick = heapq.nsmallest if lowest else heapq.nlargest
    return pick(2 * n, board, key=board.__getitem__)
