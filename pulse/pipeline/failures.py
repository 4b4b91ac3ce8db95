"""What a failed write means: try again later, isolate the records that cause it, or stop.

- *transient*: the database or the broker is unreachable, slow or electing (retry with
  backoff: the same batch, later, succeeds);
- *record-caused*: the database refused what the statements say, or the pure code raised on
  what the records hold (halve the batch to find the records, dead-letter them, go on:
  pulse/pipeline/isolation.py);
- anything else (authentication, authorisation, configuration, a bug in Pulse): stop, with
  the error, and let the run fail where an operator sees it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import bson.errors
import polars as pl
from confluent_kafka import KafkaException
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    ExecutionTimeout,
    OperationFailure,
    WTimeoutError,
)

from pulse.store.writes import WriteFailedError

_TRANSIENT_CODES = frozenset(
    {6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)
"""MongoDB error codes of an unreachable, stepping-down, shutting-down or timed-out server, and
of a write conflict (112: pulse/store/item_buckets.py)."""
_CONTENT_CODES = frozenset({2, 14, 17, 28, 52, 55, 56, 57, 10334, 17419, 17420})
"""MongoDB error codes of a refused document: bad value or type, bad field name, too large."""


def is_transient(exc: BaseException) -> bool:
    """The database or the broker was unreachable or too slow: the same write later works."""
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")
    if isinstance(exc, KafkaException):
        return bool(exc.args and exc.args[0].retriable())
    return False


def is_record_caused(exc: BaseException) -> bool:
    """The failure comes from what the records hold, so isolating them can help."""
    if is_transient(exc):
        return False
    if isinstance(exc, OperationFailure):
        return exc.code in _CONTENT_CODES
    return isinstance(
        exc,
        WriteFailedError
        | DocumentTooLarge
        | bson.errors.BSONError
        | pl.exceptions.PolarsError
        | ValueError
        | TypeError
        | OverflowError
        | KeyError
        | IndexError,
    )


BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
RETRY_WITHIN_SECONDS = 240.0
"""How long transient failures of one batch are retried: under Kafka's max.poll.interval.ms
(300 s), after which the member would be out of the group while it still held the batch."""

T = TypeVar("T")


def retry_transient(
    action: Callable[[], T],
    *,
    stop: threading.Event,
    say: Callable[[str], None],
    delays: tuple[float, ...] = BACKOFF_SECONDS,
) -> T:
    """`action()`, tried again with growing pauses while it fails transiently (for up to
    RETRY_WITHIN_SECONDS, and not once `stop` is set); any other failure is raised at once."""
    waited, attempt = 0.0, 0
    while True:
        try:
            return action()
        except Exception as exc:
            delay = delays[min(attempt, len(delays) - 1)]
            if not is_transient(exc) or waited + delay > RETRY_WITHIN_SECONDS:
                raise
            say(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}; again in {delay:g} s")
            if stop.wait(delay):
                raise
            waited, attempt = waited + delay, attempt + 1
