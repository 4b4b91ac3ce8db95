"""Alert evaluation (pure): rules + observed window values + state + now -> decisions.

- A rule fires for a key and window when the window's value reaches the threshold (and, for
  an anomaly rule, `ratio` times the key's baseline: `crosses`), at most once per
  (rule, key, window): the alert's id is built from the three, so a replayed batch
  cannot fire it twice.
- After firing, the same rule and key stay quiet for `cooldown_minutes` of event time.
- A firing alert resolves when a later window has closed (its end plus a grace period for
  late events has passed) with a value under `resolve_below` times what firing takes
  (`threshold`, or for an anomaly rule the larger of it and `ratio` times that window's
  baseline), or when a later window of the same rule and key fires (superseded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pulse.alerts.rules import AlertRule

MAX_FIRES_PER_CHECK = 100
"""New alerts of one rule in one check (one entity flush), at most, oldest windows first: a
rule that fires for every user cannot flood the database and the channels. Keys left out
fire at a later check if their windows still qualify."""
CLOSE_GRACE = timedelta(minutes=1)
"""How long after a window ends late events may still arrive before it counts as closed."""


def window_start(moment: datetime, minutes: int) -> datetime:
    """Start of the tumbling window holding `moment` (windows are aligned to midnight UTC)."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = int((moment - midnight).total_seconds() // 60) // minutes * minutes
    return midnight + timedelta(minutes=offset)


def alert_id(rule_id: str, key: str, start: datetime) -> str:
    return f"{rule_id}|{key}|{start.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


@dataclass(frozen=True)
class Observation:
    """The value of a rule's metric for one key in one window."""

    rule_id: str
    key: str
    window_start: datetime
    value: float
    baseline: float | None = None
    """The key's usual value before the window (anomaly rules; None: not read)."""


def baseline(windows: Sequence[float]) -> float | None:
    """A key's usual value from its windows before the current one (oldest first): their
    exponentially weighted average (weight 2 / (n + 1), the latest most), from the first
    window with any value. None while that history covers less than half of them: a key
    just seen, or a pipeline just started, has no usual yet, and everything would surge."""
    start = next((n for n, value in enumerate(windows) if value), len(windows))
    history = windows[start:]
    if len(history) < max(2, (len(windows) + 1) // 2):
        return None
    alpha = 2 / (len(windows) + 1)
    average = history[0]
    for value in history[1:]:
        average += alpha * (value - average)
    return average


def needed(rule: AlertRule, baseline: float | None) -> float:
    """The value at which `rule` fires, given the key's baseline (anomaly rules)."""
    if rule.baseline_windows is None:
        return rule.threshold
    return max(rule.threshold, rule.ratio * (baseline or 0.0))


def crosses(rule: AlertRule, seen: Observation) -> bool:
    """Whether the observation fires `rule` (cooldowns aside). An anomaly rule needs the
    baseline: read only for values at the threshold, None means not read yet."""
    if rule.floor:
        return seen.value < rule.threshold
    if seen.value < rule.threshold:
        return False
    return rule.baseline_windows is None or (
        seen.baseline is not None and seen.value >= needed(rule, seen.baseline)
    )


@dataclass(frozen=True)
class RuleState:
    """What is remembered per rule and key between batches."""

    last_fired: datetime | None = None
    """Start of the last window that fired (for the cooldown)."""
    firing: datetime | None = None
    """Start of the window of the alert still firing, if any."""


@dataclass(frozen=True)
class Decision:
    """Fire a new alert, or resolve a firing one."""

    kind: Literal["fire", "resolve"]
    rule: AlertRule
    key: str
    window_start: datetime
    value: float
    reason: str = ""
    """Why an alert resolves: its metric fell back, or a later window fired (superseded)."""

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule.id, self.key, self.window_start)

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(minutes=self.rule.window_minutes)


def fires(
    rules: Mapping[str, AlertRule],
    observations: Iterable[Observation],
    states: Mapping[tuple[str, str], RuleState],
) -> list[Decision]:
    """New alerts among the observations, oldest window first, cooldowns applied, at most
    MAX_FIRES_PER_CHECK per rule."""
    decisions: list[Decision] = []
    current = dict(states)
    fired: dict[str, int] = {}
    for seen in sorted(observations, key=lambda o: (o.window_start, o.rule_id, o.key)):
        rule = rules.get(seen.rule_id)
        if rule is None or not crosses(rule, seen):
            continue
        if fired.get(rule.id, 0) >= MAX_FIRES_PER_CHECK:
            continue
        if rule.scope is not None and seen.key not in rule.scope:
            continue
        state = current.get((rule.id, seen.key), RuleState())
        if state.last_fired is not None:
            if seen.window_start <= state.last_fired:
                continue  # this window (or a later one) already fired
            if seen.window_start < state.last_fired + timedelta(minutes=rule.cooldown_minutes):
                continue
        if state.firing is not None:
            decisions.append(
                Decision("resolve", rule, seen.key, state.firing, seen.value, "superseded")
            )
        decisions.append(Decision("fire", rule, seen.key, seen.window_start, seen.value))
        fired[rule.id] = fired.get(rule.id, 0) + 1
        current[(rule.id, seen.key)] = RuleState(
            last_fired=seen.window_start, firing=seen.window_start
        )
    return decisions


def resolutions(
    rules: Mapping[str, AlertRule],
    firing: Mapping[tuple[str, str], RuleState],
    latest_closed: Mapping[tuple[str, str], float],
    now: datetime,
    baselines: Mapping[tuple[str, str], float | None] | None = None,
) -> list[Decision]:
    """Firing alerts whose metric fell back in the last closed window after the firing one.

    `latest_closed` holds, per (rule id, key), the value of the most recent closed window
    (0 when it had no events); `baselines` that window's baseline, for anomaly rules.
    """
    decisions = []
    for (rule_id, key), state in firing.items():
        rule = rules.get(rule_id)
        if rule is None or state.firing is None:
            continue
        if latest_closed_window(rule, now) <= state.firing:
            continue  # no later window has closed yet
        value = latest_closed.get((rule_id, key), 0.0)
        baseline = (baselines or {}).get((rule_id, key))
        if value < needed(rule, baseline) * rule.resolve_below:
            decisions.append(Decision("resolve", rule, key, state.firing, value, "fell back"))
    return decisions


def latest_closed_window(rule: AlertRule, now: datetime) -> datetime:
    """Start of the most recent window of `rule` that counts as closed at `now`."""
    return window_start(now - CLOSE_GRACE, rule.window_minutes) - timedelta(
        minutes=rule.window_minutes
    )
