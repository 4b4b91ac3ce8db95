"""Writing buckets that other flushes may change between a read and its write.

A flush reads its buckets, plans each one's write from what it read, and guards the write
with what it read (pulse/store/item_buckets.py, pulse/store/user_buckets.py). A bucket another
flush changed meanwhile refuses the write; it is read and written again on its own, after a
short random pause so that flushes contending for it fall out of step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from pymongo.errors import OperationFailure

from pulse.store.statements import Statement
from pulse.store.writes import UpsertResult

WRITE_ROUNDS = 12
"""Reads and writes of one contended bucket before giving up (the flush is then retried)."""
BACKOFF_SECONDS = 0.002
"""The longest pause before a contended bucket's first re-read; it doubles with each."""
WRITE_CONFLICT = 112
"""MongoDB's code of a write conflict (transient: the flush is retried)."""

Writer = Callable[[str, list[Statement]], UpsertResult]
"""Runs one collection's statements (BatchWriter's short commands)."""
WriteRound = Callable[[list[str]], set[str]]
"""Reads these buckets and writes those not holding the flush yet; returns the refused ones."""


def write_in_rounds(collection: str, buckets: list[str], write_round: WriteRound) -> None:
    """All buckets in one round, then each refused one on its own until it takes the write."""
    for bucket in sorted(write_round(sorted(buckets))):
        for attempt in range(WRITE_ROUNDS):
            pause = random.uniform(0, BACKOFF_SECONDS * 2**attempt)  # noqa: S311 (jitter)
            time.sleep(pause)
            if not write_round([bucket]):
                break
        else:
            raise OperationFailure(
                f"{collection}: bucket {bucket} changed under {WRITE_ROUNDS} writes in a row",
                code=WRITE_CONFLICT,
            )
