"""The deployed benchmark's rate windows (bench/deployed.py:window_rates)."""

from __future__ import annotations

import pytest

from bench.deployed import RATE_WINDOW, window_rates


def _bursts_seen(every: float, seconds: float, phase: float) -> list[tuple[float, int]]:
    """Samples every `every` s of a topic that gets a burst of 500 each second."""
    points = []
    tick = 0.0
    while tick <= seconds:
        points.append((tick, 500 * int(tick + phase)))  # bursts sent by then
        tick += every
    return points


def test_a_steady_generator_is_at_rate_in_every_window_whatever_the_phase() -> None:
    samples = _bursts_seen(4.99, 600, phase=0.999)  # samples and bursts nearly in step
    short = window_rates(samples, 5.0)
    assert min(short) < 0.95 * 500, "5-s intervals should show the phase artefact"
    windows = window_rates(samples, RATE_WINDOW)
    assert len(windows) >= 15  # about 35 s each over 600 s
    assert all(rate == pytest.approx(500, rel=0.04) for rate in windows), windows


def test_a_stalled_generator_shows_in_its_window() -> None:
    samples = [(float(t), 500 * min(t, 100)) for t in range(0, 181, 5)]  # stops after 100 s
    rates = window_rates(samples, RATE_WINDOW)
    assert rates[:3] == [500, 500, 500]
    assert rates[3] == pytest.approx(500 * 10 / 30)
    assert rates[4:] == [0, 0]


def test_no_samples_no_windows() -> None:
    assert window_rates([], RATE_WINDOW) == []
    assert window_rates([(0.0, 0)], RATE_WINDOW) == []
