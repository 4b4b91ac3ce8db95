"""Turn SIGTERM and a first Ctrl-C into a polite request to stop after the current batch."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from rich.console import Console

console = Console(stderr=True)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT; a second Ctrl-C interrupts at once."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the ledger replays a half-written batch on next start
        stop.set()
        console.print(
            f"[yellow]{signal.Signals(signum).name}: stopping after the current batch "
            "(Ctrl-C again to abort it)[/yellow]"
        )

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
