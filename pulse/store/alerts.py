"""Alert documents: rules stored by operators, each rule and key's state, the alerts fired and
their delivery (pulse/alerts/engine.py decides; this module holds every statement)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from pulse.store.client import Document
from pulse.store.reads import by_ids, item_bucket_count
from pulse.store.schema import (
    ALERT_RULES,
    ALERT_STATE,
    ALERTS,
    BUCKET_ITEMS,
    ITEM_MINUTES,
    USER_MINUTES,
    item_minute_ids_of,
    judged_id,
)
from pulse.store.writes import file_in_timeline


@dataclass(frozen=True)
class Change:
    """An alert of one rule, key and window, and its rule and key's state."""

    alert_id: str
    state_id: str
    rule_id: str
    key: str
    window_start: datetime
    value: float

    def names(self) -> dict[str, str]:
        """Whose alert or state a document is."""
        return {"rule_id": self.rule_id, "key": self.key}


@dataclass(frozen=True)
class Fired(Change):
    """A new alert: its document's fields, and its rule and key's state from now on."""

    fields: dict[str, Any]
    """What the alert says besides (metric, severity, threshold, window end, channels)."""


@dataclass(frozen=True)
class Resolved(Change):
    """A firing alert that resolves, and why."""

    reason: str


def stored_rules(db: Database[Document]) -> list[Document]:
    """The rules operators stored in `alert_rules` (validated by the caller)."""
    return list(db[ALERT_RULES].find())


def user_minute_documents(db: Database[Document], ids: list[str]) -> list[Document]:
    """Per-user minute counts (`counts.<user>`), by document id."""
    return by_ids(db, USER_MINUTES, ids, {"counts": 1})


def window_type_counts(
    db: Database[Document], minutes: list[str], kinds: tuple[str, ...]
) -> dict[str, list[int]]:
    """Every item's count of each of `kinds` over these minutes: all their item x minute
    buckets, read once per closed window by a conversion rule (not per flush)."""
    buckets = item_bucket_count(db)
    ids = [doc_id for minute in minutes for doc_id in item_minute_ids_of(minute, buckets)]
    counts: dict[str, list[int]] = {}
    for doc in by_ids(db, ITEM_MINUTES, ids, {BUCKET_ITEMS: 1}):
        for item, figures in doc.get(BUCKET_ITEMS, {}).items():
            held = counts.setdefault(item, [0] * len(kinds))
            types = figures.get("types", {})
            for index, kind in enumerate(kinds):
                held[index] += int(types.get(kind, 0))
    return counts


def judged_through(db: Database[Document], rule_id: str) -> datetime | None:
    """The start of the latest window a closed-window rule has judged."""
    doc = db[ALERT_STATE].find_one({"_id": judged_id(rule_id)}, {"judged_through": 1})
    return None if doc is None else doc.get("judged_through")


def mark_judged(db: Database[Document], rule_id: str, start: datetime) -> None:
    db[ALERT_STATE].update_one(
        {"_id": judged_id(rule_id)}, {"$max": {"judged_through": start}}, upsert=True
    )


def states(db: Database[Document], ids: list[str]) -> list[Document]:
    """Rule and key states by id: when each last fired, and the window firing now if any."""
    return by_ids(db, ALERT_STATE, ids, {"rule_id": 1, "key": 1, "last_fired": 1, "firing": 1})


def firing_states(db: Database[Document]) -> list[Document]:
    """The states of every rule and key firing now."""
    return list(db[ALERT_STATE].find({"firing": {"$ne": None}}))


def store(db: Database[Document], changes: Sequence[Fired | Resolved], now: datetime) -> list[str]:
    """Write the changes, alerts then their states, each in one ordered bulk write (a round
    trip per alert made a backlog's hundreds of alerts cost a second); returns the ids of the
    alerts this call created."""
    if not changes:
        return []
    file_in_timeline(db, ALERTS, now, [c.alert_id for c in changes if isinstance(c, Fired)])
    upserted = db[ALERTS].bulk_write([_alert(c, now) for c in changes], ordered=True)
    db[ALERT_STATE].bulk_write([_state(c) for c in changes], ordered=True)
    # By _id, not by index: FerretDB 1.24 numbers its `upserted` entries among the upserts
    # only, not among the statements.
    return [str(doc_id) for doc_id in (upserted.upserted_ids or {}).values()]


def pending_ids(db: Database[Document]) -> list[str]:
    """Alerts stored but not sent yet (their sender stopped first)."""
    return [doc["_id"] for doc in db[ALERTS].find({"delivery": "pending"}, {"_id": 1})]


def alert(db: Database[Document], alert_id: str) -> Document | None:
    return db[ALERTS].find_one({"_id": alert_id})


def record_delivery(
    db: Database[Document],
    alert_id: str,
    state: str,
    deliveries: list[dict[str, Any]],
    now: datetime,
) -> None:
    """How sending the alert went: its delivery state and each channel's outcome."""
    db[ALERTS].update_one(
        {"_id": alert_id},
        {"$set": {"delivery": state, "deliveries": deliveries, "notified_at": now}},
    )


def _alert(change: Fired | Resolved, now: datetime) -> UpdateOne:
    if isinstance(change, Fired):
        inserted = change.names() | {
            "window_start": change.window_start,
            **change.fields,
            "fired_at": now,
            "state": "firing",
            "delivery": "pending",
        }
        return UpdateOne(
            {"_id": change.alert_id},
            {"$setOnInsert": inserted, "$max": {"value": change.value}},
            upsert=True,
        )
    return UpdateOne(
        {"_id": change.alert_id, "state": "firing"},
        {
            "$set": {
                "state": "resolved",
                "resolved_at": now,
                "resolved_value": change.value,
                "resolved_because": change.reason,
            }
        },
    )


def _state(change: Fired | Resolved) -> UpdateOne:
    if isinstance(change, Fired):
        return UpdateOne(
            {"_id": change.state_id},
            {
                "$set": change.names() | {"firing": change.window_start},
                "$max": {"last_fired": change.window_start},
            },
            upsert=True,
        )
    return UpdateOne(
        {"_id": change.state_id, "firing": change.window_start}, {"$set": {"firing": None}}
    )
