"""Counts first: a micro-batch's counts are written before the next command of an entity flush.

The entity flush runs in the background and writes about a thousand documents (docs/consumer.md).
On FerretDB every document is a SQLite transaction of its own, and a writer that commits
without pause keeps winning SQLite's lock against one that backs off and retries: a batch's
counts waited for the whole flush, and freshness spiked by a flush's length. The flush writes
in short commands and, before each, waits while a batch's counts are being written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CountsFirst:
    """Counts writers go first; entity-flush writers wait for their turn between commands."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counting = 0
        self.waiting = 0
        """Flush writers waiting for their turn now (the tests watch it)."""

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Around a batch's counts: entity-flush commands not yet sent wait until it ends."""
        with self._changed:
            self._counting += 1
        try:
            yield
        finally:
            with self._changed:
                self._counting -= 1
                self._changed.notify_all()

    def wait_turn(self) -> None:
        """Before an entity-flush command: return once no batch's counts are being written."""
        with self._changed:
            self.waiting += 1
            try:
                self._changed.wait_for(lambda: self._counting == 0)
            finally:
                self.waiting -= 1
