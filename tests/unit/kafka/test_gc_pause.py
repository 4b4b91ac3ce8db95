"""The poll's garbage-collector pause (pulse/kafka/source.py:cyclic_gc_paused)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pulse.kafka.source import cyclic_gc_paused


@pytest.fixture
def gc_state() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("gc_state")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after(enabled: bool) -> None:
    if enabled:
        gc.enable()
    else:
        gc.disable()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("gc_state")
def test_the_collector_comes_back_when_the_poll_fails() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("broker gone")
    assert gc.isenabled()
