"""Alerting in each entity flush: refresh the rules, observe the windows a flush touched,
decide, store, and hand new alerts to the notifier (pulse/alerts/notifier.py).

Decisions come from the pure functions in pulse/alerts/evaluate.py and are stored through
pulse/store/alerts.py; this module reads what they need. Alerts are keyed by rule, key and
window, so re-processing a batch cannot duplicate one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import polars as pl
from pymongo.database import Database

from pulse.alerts.evaluate import (
    Decision,
    Observation,
    RuleState,
    baseline,
    crosses,
    fires,
    latest_closed_window,
    resolutions,
    window_start,
)
from pulse.alerts.notifier import Notifier
from pulse.alerts.rules import (
    AlertRule,
    Rejection,
    load_rules_file,
    merge,
    parse_stored,
    within_retention,
)
from pulse.config import FOR_GOOD, AlertSettings
from pulse.ingest.aggregate import Aggregates
from pulse.store import alerts as alerts_store
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.reads import (
    item_bucket_count,
    item_minute_figures,
    minute_ids,
    user_minute_counts,
)
from pulse.store.schema import (
    ALERT_RULES,
    alert_state_id,
    item_minute_id,
    minute_id,
    minute_of_id,
    parse_minute_id,
    user_minute_id,
)

log = logging.getLogger(__name__)

RULES_REFRESH_SECONDS = 30.0


class Alerting:
    """Evaluates the rules after each batch and keeps alerts and their state in MongoDB."""

    def __init__(
        self,
        db: Database[Document],
        settings: AlertSettings,
        file_rules: list[AlertRule],
        minutes_kept: timedelta = FOR_GOOD,
    ) -> None:
        self.db = db
        self.settings = settings
        self.file_rules = file_rules
        self.minutes_kept = minutes_kept
        """How long per-minute documents are kept: rules whose windows need older ones are
        skipped."""
        self._rules: list[AlertRule] = merge(self.file_rules, [])
        self.rejected: list[Rejection] = []
        """Stored rules that did not validate at the last refresh (skipped)."""
        self._loaded = 0.0
        self.notifier = Notifier(db, settings)

    @classmethod
    def start(
        cls, db: Database[Document], settings: AlertSettings, minutes_kept: timedelta
    ) -> Alerting:
        """Read the rules (invalid ones stop here, rule and field named) and send the alerts a
        previous process stored but did not get to send (at-least-once delivery)."""
        alerting = cls(db, settings, load_rules_file(settings.rules_file), minutes_kept)
        if alerting.rules():
            alerting.notifier.prepare()
        alerting.notifier.resend_pending()
        return alerting

    # --- rules -------------------------------------------------------------------------

    def rules(self) -> dict[str, AlertRule]:
        """File rules, replaced by same-id rules from the `alert_rules` collection (re-read
        every 30 s, so rules can be edited while the pipeline runs). A stored rule that does
        not validate is skipped with a warning and recorded (Alerts page, /metrics); it never
        stops the others, nor the counting."""
        if time.monotonic() - self._loaded > RULES_REFRESH_SECONDS:
            stored, rejected = parse_stored(alerts_store.stored_rules(self.db), ALERT_RULES)
            self._rules, uncovered = within_retention(
                merge(self.file_rules, stored), self.minutes_kept
            )
            rejected += uncovered
            known = {rejection.reason for rejection in self.rejected}
            for rejection in rejected:
                if rejection.reason not in known:
                    log.warning("alert rule skipped: %s", rejection.reason)
            writes.record_rule_rejections(self.db, rejected)
            self.rejected = rejected
            self._loaded = time.monotonic()
        return {rule.id: rule for rule in self._rules}

    @property
    def needs_user_minutes(self) -> bool:
        return any(rule.entity == "user" for rule in self.rules().values())

    # --- after a batch -----------------------------------------------------------------

    def after_batch(self, aggregates: Aggregates, now: datetime) -> list[Decision]:
        """Fire and resolve alerts for the windows this batch touched; returns the decisions."""
        rules = self.rules()
        if not rules:
            return []
        observations = self._observe_items(
            [rule for rule in rules.values() if rule.metric == "item_interactions"], aggregates
        )
        observations = self._with_baselines(rules, observations)
        for rule in (rule for rule in rules.values() if rule.entity == "user"):
            observations += self._observe_users(rule, aggregates)
        firing = {key: state for key, state in self._firing().items() if key[0] in rules}
        # Only a value at its threshold can fire, so only those keys' cooldowns are read.
        crossing = {
            (o.rule_id, o.key) for o in observations if o.value >= rules[o.rule_id].threshold
        }
        decisions = fires(rules, observations, self._states(crossing - firing.keys()) | firing)
        # Windows close by event time: while counting lags behind the clock, a window the
        # counts have not reached yet holds nothing, and must not resolve an alert.
        counted = aggregates.totals["last_seen"].item()
        clock = min(now, counted) if isinstance(counted, datetime) else now
        open_rules = {rule_id: rule for rule_id, rule in rules.items() if not rule.floor}
        open_firing = {key: state for key, state in firing.items() if key[0] in open_rules}
        closed, baselines = self._closed_values(open_rules, open_firing, clock)
        decisions += resolutions(open_rules, open_firing, closed, clock, baselines)
        judging = (self._judge_closed(rule, firing, clock) for rule in rules.values() if rule.floor)
        judged = [verdict for verdict in judging if verdict is not None]
        decisions += [decision for _, _, found in judged for decision in found]
        new = self._store(decisions, now)
        self.notifier.deliver(new)
        for rule_id, start, _ in judged:  # after the decisions: a replay judges it again
            alerts_store.mark_judged(self.db, rule_id, start)
        return decisions

    def _observe_items(self, rules: list[AlertRule], aggregates: Aggregates) -> list[Observation]:
        """The current value of every (key, window) of each item rule that this batch added
        to; the item x minute buckets they need are read once for all the rules."""
        pairs_by_rule: dict[str, set[tuple[str, datetime]]] = {}
        for rule in rules:
            touched = aggregates.item_minutes
            if rule.interaction_type:
                touched = touched.filter(pl.col(f"types.{rule.interaction_type}") > 0)
            pairs_by_rule[rule.id] = {
                (item, window_start(minute, rule.window_minutes))
                for item, minute in touched.select("item_id", "minute").iter_rows()
                if rule.scope is None or item in rule.scope
            }
        values = self._item_windows({rule.id: rule for rule in rules}, pairs_by_rule)
        return [
            Observation(rule_id, key, start, value)
            for rule_id, windows in values.items()
            for (key, start), value in windows.items()
        ]

    def _observe_users(self, rule: AlertRule, aggregates: Aggregates) -> list[Observation]:
        """The current value of every (key, window) of a user rule that this batch added to."""
        pairs_by_doc: dict[str, set[str]] = defaultdict(set)
        for partition, minute, user in aggregates.user_minutes.select(
            "partition", "minute_id", "user_id"
        ).iter_rows():
            if rule.scope is None or user in rule.scope:
                pairs_by_doc[user_minute_id(minute, partition)].add(user)
        observations = []
        for doc in alerts_store.user_minute_documents(self.db, list(pairs_by_doc)):
            minute = parse_minute_id(minute_of_id(doc["_id"]))
            counts = doc.get("counts", {})
            observations += [
                Observation(rule.id, user, minute, float(counts.get(user, 0)))
                for user in pairs_by_doc[doc["_id"]]
            ]
        return observations

    def _item_windows(
        self,
        rules: Mapping[str, AlertRule],
        pairs_by_rule: Mapping[str, Iterable[tuple[str, datetime]]],
    ) -> dict[str, dict[tuple[str, datetime], float]]:
        """Per rule, the sum of each item's figures in its item x minute buckets over each
        (item, window); one read of the buckets for all the rules."""
        values = {
            rule_id: dict.fromkeys(set(pairs), 0.0) for rule_id, pairs in pairs_by_rule.items()
        }
        wanted: dict[str, dict[str, set[tuple[str, datetime]]]] = defaultdict(
            lambda: defaultdict(set)
        )
        buckets = item_bucket_count(self.db)
        for rule_id, windows in values.items():
            for item, start in windows:
                last = start + timedelta(minutes=rules[rule_id].window_minutes - 1)
                for minute in minute_ids(start, last):
                    wanted[item_minute_id(item, minute, buckets)][rule_id].add((item, start))
        found = item_minute_figures(
            self.db,
            {
                doc_id: {item for held in by_rule.values() for item, _ in held}
                for doc_id, by_rule in wanted.items()
            },
        )
        for doc_id, by_rule in wanted.items():
            for rule_id, held in by_rule.items():
                kind = rules[rule_id].interaction_type
                for item, start in held:
                    figures = found.get((doc_id, item), {})
                    if kind:
                        figures = figures.get("types", {})
                    values[rule_id][(item, start)] += float(figures.get(kind or "total", 0))
        return values

    def _judge_closed(
        self, rule: AlertRule, firing: dict[tuple[str, str], RuleState], now: datetime
    ) -> tuple[str, datetime, list[Decision]] | None:
        """Judge the rule's latest closed window once, over every item active in it: fire
        for those below the floor, resolve those firing since an earlier window that are
        not. An open window is never judged (early in a window purchases lag views).
        Returns the rule, the window and the decisions; None if it was judged already."""
        start = latest_closed_window(rule, now)
        judged = alerts_store.judged_through(self.db, rule.id)
        if judged is not None and start <= judged.replace(tzinfo=start.tzinfo):
            return None
        kinds = rule.conversion or ()
        last = start + timedelta(minutes=rule.window_minutes - 1)
        counts = alerts_store.window_type_counts(self.db, minute_ids(start, last), kinds)
        observations = [
            Observation(rule.id, item, start, converted / first)
            for item, (first, converted) in counts.items()
            if first >= rule.min_events
        ]
        below = {seen.key for seen in observations if crosses(rule, seen)}
        mine = {key: state for key, state in firing.items() if key[0] == rule.id}
        decisions = fires(
            {rule.id: rule},
            observations,
            self._states({(rule.id, key) for key in below} - mine.keys()) | mine,
        )
        value_of = {seen.key: seen.value for seen in observations}
        decisions += [
            Decision("resolve", rule, key, state.firing, value_of.get(key, 0.0), "recovered")
            for (_, key), state in mine.items()
            if state.firing is not None and state.firing < start and key not in below
        ]
        return rule.id, start, decisions

    def _with_baselines(
        self, rules: Mapping[str, AlertRule], observations: list[Observation]
    ) -> list[Observation]:
        """The observations, those of anomaly rules at their threshold with their baseline
        (the rest cannot fire, so their baselines are not read)."""
        pairs: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        for seen in observations:
            rule = rules[seen.rule_id]
            if rule.baseline_windows is not None and seen.value >= rule.threshold:
                pairs[rule.id].append((seen.key, seen.window_start))
        if not pairs:
            return observations
        baselines = {
            (rule_id, key, start): value
            for rule_id, keyed in pairs.items()
            for (key, start), value in self._baselines(rules[rule_id], keyed).items()
        }
        return [
            replace(seen, baseline=baselines.get((seen.rule_id, seen.key, seen.window_start)))
            for seen in observations
        ]

    def _baselines(
        self, rule: AlertRule, windows: Iterable[tuple[str, datetime]]
    ) -> dict[tuple[str, datetime], float | None]:
        """Per (key, window start), the key's baseline from the rule's `baseline_windows`
        windows before (evaluate.baseline; one read for all of them)."""
        step = timedelta(minutes=rule.window_minutes)
        count = rule.baseline_windows or 0
        wanted = list(dict.fromkeys(windows))
        before = {
            (key, start): [start - step * back for back in range(count, 0, -1)]
            for key, start in wanted
        }
        pairs = [(key, earlier) for (key, _), starts in before.items() for earlier in starts]
        values = self._item_windows({rule.id: rule}, {rule.id: pairs})[rule.id]
        return {
            (key, start): baseline([values[(key, earlier)] for earlier in starts])
            for (key, start), starts in before.items()
        }

    def _closed_values(
        self,
        rules: dict[str, AlertRule],
        firing: dict[tuple[str, str], RuleState],
        now: datetime,
    ) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float | None]]:
        """Per firing (rule, key) whose rule has closed a window since it fired, the value of
        that window, and for anomaly rules its baseline: one read per rule, not per key (a
        backlog can have thousands firing)."""
        keys_by_rule: dict[str, list[str]] = defaultdict(list)
        for (rule_id, key), state in firing.items():
            if (
                state.firing is not None
                and latest_closed_window(rules[rule_id], now) > state.firing
            ):
                keys_by_rule[rule_id].append(key)
        values: dict[tuple[str, str], float] = {}
        baselines: dict[tuple[str, str], float | None] = {}
        for rule_id, keys in keys_by_rule.items():
            rule = rules[rule_id]
            start = latest_closed_window(rule, now)
            if rule.baseline_windows is not None:
                found_baselines = self._baselines(rule, [(key, start) for key in keys])
                baselines |= {(rule_id, key): found_baselines[(key, start)] for key in keys}
            if rule.entity == "item":
                windows = self._item_windows({rule_id: rule}, {rule_id: [(k, start) for k in keys]})
                found = {key: windows[rule_id].get((key, start), 0.0) for key in keys}
            else:
                counts = user_minute_counts(self.db, minute_id(start), keys)
                found = {key: float(counts.get(key, 0)) for key in keys}
            values |= {(rule_id, key): value for key, value in found.items()}
        return values, baselines

    def _states(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], RuleState]:
        ids = [alert_state_id(rule, key) for rule, key in keys]
        return {
            (doc["rule_id"], doc["key"]): _state(doc) for doc in alerts_store.states(self.db, ids)
        }

    def _firing(self) -> dict[tuple[str, str], RuleState]:
        return {
            (doc["rule_id"], doc["key"]): _state(doc) for doc in alerts_store.firing_states(self.db)
        }

    def _store(self, decisions: list[Decision], now: datetime) -> list[str]:
        """Store the decisions; returns the ids of the alerts this call created."""
        return alerts_store.store(self.db, [_change(decision) for decision in decisions], now)

    def close(self) -> None:
        self.notifier.close()


def _change(decision: Decision) -> alerts_store.Fired | alerts_store.Resolved:
    """A decision as the store writes it."""
    rule = decision.rule
    alert = (
        decision.alert_id,
        alert_state_id(rule.id, decision.key),
        rule.id,
        decision.key,
        decision.window_start,
        decision.value,
    )
    if decision.kind == "resolve":
        return alerts_store.Resolved(*alert, reason=decision.reason)
    fields = {
        "metric": rule.metric,
        "interaction_type": rule.interaction_type,
        "severity": rule.severity,
        "threshold": rule.threshold,
        "window_end": decision.window_end,
        "channels": list(rule.channels),
    }
    return alerts_store.Fired(*alert, fields=fields)


def _state(doc: Document) -> RuleState:
    return RuleState(last_fired=doc.get("last_fired"), firing=doc.get("firing"))
