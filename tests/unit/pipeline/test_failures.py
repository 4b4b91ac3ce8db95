"""Which failures are retried, which isolated, which stop (pulse/pipeline/failures.py)."""

from __future__ import annotations

import threading

import pytest
from pymongo.errors import AutoReconnect, DocumentTooLarge, OperationFailure

from pulse.pipeline.failures import is_record_caused, is_transient, retry_transient
from pulse.store.writes import WriteFailedError


@pytest.mark.parametrize(
    ("error", "transient", "record_caused"),
    [
        (AutoReconnect("connection refused"), True, False),
        (OperationFailure("primary stepped down", code=189), True, False),
        (OperationFailure("unauthorized", code=13), False, False),  # a setup fault: stop
        (OperationFailure("document too large", code=10334), False, True),
        (DocumentTooLarge("command too large"), False, True),
        (WriteFailedError("minutes: write refused (code 2)"), False, True),
        (OverflowError("date value out of range"), False, True),
        (RuntimeError("a fault of Pulse"), False, False),
    ],
)
def test_failures_are_told_apart(error: Exception, transient: bool, record_caused: bool) -> None:
    assert is_transient(error) == transient
    assert is_record_caused(error) == record_caused


def test_transient_failures_are_retried_until_the_action_works() -> None:
    outcomes: list[Exception | None] = [AutoReconnect("down"), AutoReconnect("down"), None]
    said: list[str] = []

    def action() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "written"

    got = retry_transient(action, stop=threading.Event(), say=said.append, delays=(0.0,))
    assert got == "written"
    assert len(said) == 2 and "AutoReconnect: down" in said[0]


def test_other_failures_and_a_stop_are_not_retried() -> None:
    def refused() -> None:
        raise OperationFailure("unauthorized", code=13)

    with pytest.raises(OperationFailure):
        retry_transient(refused, stop=threading.Event(), say=print, delays=(0.0,))
    stop = threading.Event()
    stop.set()

    def down() -> None:
        raise AutoReconnect("down")

    with pytest.raises(AutoReconnect):
        retry_transient(down, stop=stop, say=lambda _: None, delays=(0.0,))
