"""Alert evaluation at and around every boundary, with replays and cooldowns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulse.alerts.evaluate import (
    MAX_FIRES_PER_CHECK,
    Observation,
    RuleState,
    alert_id,
    baseline,
    fires,
    latest_closed_window,
    resolutions,
    window_start,
)
from pulse.alerts.rules import AlertRule

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {"id": "hot", "metric": "item_interactions", "threshold": 100}
    return AlertRule.model_validate(fields | changes)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("moment", "minutes", "start"),
    [
        (T0 + timedelta(minutes=4, seconds=59), 5, T0),
        (T0 + timedelta(minutes=5), 5, T0 + timedelta(minutes=5)),
        (T0 - timedelta(seconds=1), 5, T0 - timedelta(minutes=5)),
        (T0 + timedelta(minutes=59), 60, T0),
    ],
)
def test_windows_are_aligned_tumbling_windows(
    moment: datetime, minutes: int, start: datetime
) -> None:
    assert window_start(moment, minutes) == start


@pytest.mark.parametrize(
    ("value", "fired"), [(99, False), (99.99, False), (100, True), (101, True)]
)
def test_fires_at_the_threshold_not_below(value: float, fired: bool) -> None:
    rule = _rule()
    decisions = fires({rule.id: rule}, [Observation("hot", "i1", T0, value)], {})
    assert [d.kind for d in decisions] == (["fire"] if fired else [])


def test_one_alert_per_rule_key_and_window_even_when_observed_again() -> None:
    rule = _rule()
    first = fires({rule.id: rule}, [Observation("hot", "i1", T0, 150)], {})
    assert [d.alert_id for d in first] == [alert_id("hot", "i1", T0)]
    # The same window seen again (a later batch, or a replay) after the state was stored.
    state = {("hot", "i1"): RuleState(last_fired=T0, firing=T0)}
    assert fires({rule.id: rule}, [Observation("hot", "i1", T0, 180)], state) == []
    # Twice in one batch: still one.
    twice = fires({rule.id: rule}, [Observation("hot", "i1", T0, 150)] * 2, {})
    assert len(twice) == 1


@pytest.mark.parametrize(("later", "fired"), [(9, False), (10, True), (11, True)])
def test_cooldown_is_measured_between_window_starts(later: int, fired: bool) -> None:
    rule = _rule(cooldown_minutes=10)
    state = {("hot", "i1"): RuleState(last_fired=T0, firing=T0)}
    decisions = fires({rule.id: rule}, [Observation("hot", "i1", _at(later), 200)], state)
    assert [d.kind for d in decisions] == (["resolve", "fire"] if fired else [])


def test_each_crossing_window_fires_once_without_cooldown() -> None:
    rule = _rule()
    observations = [
        Observation("hot", "i1", _at(m), v) for m, v in [(0, 150), (1, 20), (2, 130), (3, 100)]
    ]
    decisions = fires({rule.id: rule}, observations, {})
    fired = [d.window_start for d in decisions if d.kind == "fire"]
    assert fired == [_at(0), _at(2), _at(3)]
    superseded = [d.window_start for d in decisions if d.kind == "resolve"]
    assert superseded == [_at(0), _at(2)]


def test_keys_are_independent_and_scope_limits_them() -> None:
    rule = _rule(scope=("i1",))
    observations = [Observation("hot", "i1", T0, 150), Observation("hot", "i2", T0, 150)]
    assert [d.key for d in fires({rule.id: rule}, observations, {})] == ["i1"]


def test_observations_of_unknown_rules_are_ignored() -> None:
    assert fires({}, [Observation("gone", "i1", T0, 10**6)], {}) == []


def test_a_firing_alert_resolves_only_after_a_later_window_closed_low() -> None:
    rule = _rule(resolve_below=0.8)
    firing = {("hot", "i1"): RuleState(last_fired=T0, firing=T0)}
    # At 12:01:30 the latest closed window is 11:59 (12:00's closes at 12:02): too early.
    early = T0 + timedelta(minutes=1, seconds=30)
    assert latest_closed_window(rule, early) == T0 - timedelta(minutes=1)
    assert resolutions({rule.id: rule}, firing, {("hot", "i1"): 0}, early) == []
    # At 12:03 the 12:01 window has closed.
    late = _at(3)
    assert latest_closed_window(rule, late) == _at(1)
    assert resolutions({rule.id: rule}, firing, {("hot", "i1"): 80}, late) == []  # not below 80
    decisions = resolutions({rule.id: rule}, firing, {("hot", "i1"): 79}, late)
    assert [(d.kind, d.window_start, d.reason) for d in decisions] == [("resolve", T0, "fell back")]


def test_a_rule_fires_at_most_its_cap_of_alerts_in_one_check() -> None:
    rule = _rule(threshold=1)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    observations = [Observation(rule.id, f"u{n}", start, 5.0) for n in range(500)]
    decisions = fires({rule.id: rule}, observations, {})
    assert len(decisions) == MAX_FIRES_PER_CHECK


def test_a_baseline_weighs_recent_windows_most_and_needs_half_its_history() -> None:
    assert baseline([10, 10, 10, 10]) == 10
    assert baseline([0, 0, 10, 40]) == pytest.approx(10 + 0.4 * 30)
    assert baseline([0, 0, 0, 10]) is None  # seen in one window of four: no usual yet
    assert baseline([0, 0, 0, 0]) is None
    assert baseline([10, 0, 0, 0]) == pytest.approx(10 * 0.6**3)  # quiet since: it fell


def test_an_anomaly_rule_fires_at_ratio_times_the_baseline_and_never_without_one() -> None:
    rule = _rule(threshold=20, baseline_windows=4, ratio=3)

    def fired(value: float, usual: float | None) -> bool:
        return bool(fires({rule.id: rule}, [Observation("hot", "i1", T0, value, usual)], {}))

    assert not fired(29, 10)  # above the minimum volume, under three times its usual
    assert fired(30, 10)
    assert fired(20, 1)  # the minimum volume rules when the usual is small
    assert not fired(19, 1)
    assert not fired(1_000, None)  # a key with no usual yet


def test_an_anomaly_alert_resolves_under_what_firing_takes_in_the_closed_window() -> None:
    rule = _rule(threshold=20, baseline_windows=4, ratio=3, resolve_below=0.8)
    firing = {("hot", "i1"): RuleState(last_fired=T0, firing=T0)}
    later = _at(3)
    # The closed window's usual is 25: firing took 75, so 61 stays, 59 resolves.
    for value, resolved in ((61, False), (59, True)):
        decisions = resolutions(
            {rule.id: rule}, firing, {("hot", "i1"): value}, later, {("hot", "i1"): 25}
        )
        assert bool(decisions) is resolved
