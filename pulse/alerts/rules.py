"""Alert rules as data: a YAML file loaded at start, overridden by a MongoDB collection.

A rule watches one metric per key (an item, or a user) over tumbling windows of event time:

    rules:
      - id: hot-item
        metric: item_interactions        # or user_interactions
        interaction_type: purchase       # optional: count only this type
        window_minutes: 5                # 1-60, windows aligned to the hour: 12:00-12:05, ...
        threshold: 50                    # fires when the window's count reaches it
        cooldown_minutes: 15             # 1-10080: no new alert for the same key meanwhile
        resolve_below: 0.8               # resolves when a later window stays under 80% of it
        severity: critical               # info | warning | critical
        channels: [all]                  # names from PULSE_ALERTS_CHANNELS, or all
        scope: [i1, i2]                  # optional: only these keys
        enabled: true

A rule with `baseline_windows` watches for anomalies: it fires only when the window's count,
besides reaching `threshold` (then its minimum volume), is `ratio` times the item's own
baseline, the exponentially weighted average of its `baseline_windows` windows before:

      - id: item-surge
        metric: item_interactions
        window_minutes: 1
        threshold: 500                   # minimum volume
        baseline_windows: 15             # 2-60; window x (baseline_windows + 1) <= 120 min
        ratio: 3                         # fires at 3 x the item's usual count
        resolve_below: 0.8               # resolves under 80% of max(threshold, ratio x usual)

An `item_conversion` rule watches a floor instead: each closed window, every item with at
least `min_events` events of the first type converting (second type per first) below
`threshold` fires; it resolves once a later closed window no longer does:

      - id: low-conversion
        metric: item_conversion
        conversion: [view, purchase]
        window_minutes: 15
        threshold: 0.02                  # fires under 2 purchases per 100 views
        min_events: 200                  # views an item needs in the window to be judged
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pulse.config import TYPE_PATTERN

Metric = Literal["item_interactions", "user_interactions", "item_conversion"]
MAX_WINDOW_MINUTES = 60
"""Rule cost is bounded: a flush reads at most this many item x minute documents per touched
item and rule."""
BASELINE_REACH_MINUTES = 120
"""An anomaly rule reads at most this many minutes back: its window and its baseline's."""
MIN_COOLDOWN_MINUTES = 1
"""At most one alert per rule, key and minute."""


class AlertRule(BaseModel):
    """One threshold rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    metric: Metric
    interaction_type: str | None = Field(None, pattern=TYPE_PATTERN)
    window_minutes: int = Field(1, ge=1, le=MAX_WINDOW_MINUTES)
    threshold: float = Field(gt=0)
    cooldown_minutes: int = Field(1, ge=MIN_COOLDOWN_MINUTES, le=10_080)
    resolve_below: float = Field(1.0, gt=0, le=1)
    severity: Literal["info", "warning", "critical"] = "warning"
    channels: tuple[str, ...] = ("all",)
    scope: tuple[str, ...] | None = None
    enabled: bool = True
    baseline_windows: int | None = Field(None, ge=2, le=60)
    """Windows before the current one the item's usual count is averaged over (exponentially
    weighted, the latest most); unset: a fixed threshold."""
    ratio: float = Field(3.0, gt=1)
    """With `baseline_windows`: how many times its usual count the window must reach."""
    conversion: tuple[str, str] | None = None
    """item_conversion: the types converted from and to, e.g. [view, purchase]."""
    min_events: int = Field(20, ge=1)
    """item_conversion: events of the first type an item needs in a window to be judged."""

    @model_validator(mode="after")
    def _windows_divide_a_day(self) -> Self:
        if 1_440 % self.window_minutes:
            raise ValueError("window_minutes must divide a day (1, 2, 5, 10, 15, 30, 60, ...)")
        if self.metric == "user_interactions" and self.window_minutes != 1:
            raise ValueError("user_interactions is counted per minute: use window_minutes: 1")
        if (self.metric == "item_conversion") != (self.conversion is not None):
            raise ValueError("conversion: [from, to] is what item_conversion needs, and only it")
        if self.conversion is not None:
            for kind in self.conversion:
                if not re.fullmatch(TYPE_PATTERN, kind):
                    raise ValueError(f"conversion: {kind!r} is no interaction type")
            if self.threshold > 1 or self.interaction_type is not None:
                raise ValueError(
                    "item_conversion takes a threshold of at most 1, no interaction_type"
                )
        if self.baseline_windows is not None:
            if self.metric != "item_interactions":
                raise ValueError("baseline_windows applies to item_interactions only")
            if self.reach_minutes > BASELINE_REACH_MINUTES:
                raise ValueError(
                    f"window_minutes x (baseline_windows + 1) is {self.reach_minutes} min; "
                    f"at most {BASELINE_REACH_MINUTES}"
                )
        return self

    @property
    def reach_minutes(self) -> int:
        """How far back a window's value and its baseline read, in minutes."""
        return self.window_minutes * ((self.baseline_windows or 0) + 1)

    @property
    def entity(self) -> Literal["item", "user"]:
        return "user" if self.metric == "user_interactions" else "item"

    @property
    def floor(self) -> bool:
        """Fires below its threshold, judging closed windows only (item_conversion)."""
        return self.metric == "item_conversion"


class RuleError(ValueError):
    """A rule that cannot be used; the message names the rule and the field."""


def parse_rules(raw: list[dict[str, Any]], source: str) -> list[AlertRule]:
    """Validate rules, naming the rule and field of each problem."""
    rules: list[AlertRule] = []
    problems: list[str] = []
    for position, entry in enumerate(raw, start=1):
        name = entry.get("id", f"#{position}") if isinstance(entry, dict) else f"#{position}"
        try:
            rules.append(AlertRule.model_validate(entry))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "rule"
                problems.append(f"rule {name!r} in {source}: {where}: {error['msg']}")
    ids = [rule.id for rule in rules]
    problems += [
        f"rule {i!r} in {source}: id: used twice"
        for i in sorted({i for i in ids if ids.count(i) > 1})
    ]
    if problems:
        raise RuleError("invalid alert rules:\n  " + "\n  ".join(problems))
    return rules


@dataclass(frozen=True)
class Rejection:
    """A stored rule that does not validate: skipped, with the reason."""

    rule_id: str
    reason: str


def parse_stored(
    docs: list[dict[str, Any]], source: str
) -> tuple[list[AlertRule], list[Rejection]]:
    """Rules from documents (the id as `_id`), each judged on its own: one that does not
    validate is rejected with a one-line reason and the others stay in force."""
    rules: list[AlertRule] = []
    rejected: list[Rejection] = []
    for doc in docs:
        raw_id = doc.get("_id")
        name = raw_id if isinstance(raw_id, str) else repr(raw_id)
        entry = {k: v for k, v in doc.items() if k != "_id"} | {"id": raw_id}
        try:
            rules.append(AlertRule.model_validate(entry))
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'rule'}: {error['msg']}"
                for error in exc.errors()
            )
            said = f"rule {name[:100]!r} in {source}: {reason}"
            rejected.append(Rejection(name[:100], said[:500]))
    return rules, rejected


def load_rules_file(path: Path) -> list[AlertRule]:
    """Rules from a YAML file (`rules:` list); a missing file means no rules."""
    if not path.exists():
        return []
    document = yaml.safe_load(path.read_text()) or {}
    raw = document.get("rules", []) if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise RuleError(f"{path}: expected a top-level 'rules:' list")
    return parse_rules(raw, str(path))


def within_retention(
    rules: list[AlertRule], kept: timedelta
) -> tuple[list[AlertRule], list[Rejection]]:
    """The rules whose windows the kept per-minute documents cover, and a rejection for each
    other: a window is read until it has closed and been judged, up to twice its length back
    (PULSE_RETENTION_MINUTE_DAYS)."""
    covered: list[AlertRule] = []
    rejected: list[Rejection] = []
    for rule in rules:
        needed = rule.window_minutes + rule.reach_minutes
        if timedelta(minutes=needed) <= kept:
            covered.append(rule)
            continue
        reason = (
            f"rule {rule.id!r}: window_minutes {rule.window_minutes}{_with_baseline(rule)} needs "
            "minutes kept "
            f"{needed} min; PULSE_RETENTION_MINUTE_DAYS keeps them "
            f"{kept.total_seconds() / 60:g} min"
        )
        rejected.append(Rejection(rule.id, reason))
    return covered, rejected


def _with_baseline(rule: AlertRule) -> str:
    windows = rule.baseline_windows
    return "" if windows is None else f" with baseline_windows {windows}"


def merge(file_rules: list[AlertRule], stored_rules: list[AlertRule]) -> list[AlertRule]:
    """Rules from the database replace file rules with the same id."""
    by_id = {rule.id: rule for rule in file_rules} | {rule.id: rule for rule in stored_rules}
    return [rule for rule in by_id.values() if rule.enabled]
