"""A user's figures as its bucket stores them: one string.

FerretDB keeps a type entry for every field of a stored document and decodes and re-encodes
every field of a bucket at each update, so a user's six figures as fields of their own
(total, a count per type, first and last seen) cost it six times what one string does
(docs/performance.md, "High cardinality"). The string is

    '<total>|<first seen, ms>|<last seen, ms>|<type>=<count>,<type>=<count>|<sessions>|
     <session start, ms>|<session's latest event, ms>|<session events>'

with only the types the user has; type names hold no separator (pulse/config.py:TYPE_PATTERN).
The last four fields are the user's sessions (pulse/ingest/sessions.py): how many began, and
the latest one. A string without them was written before Pulse kept sessions: the user's next
event starts its first session. Buckets written before that hold a user as the document
{total, types, first_seen, last_seen}: read as well, and rewritten as a string the next time
the user is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pulse.ingest.sessions import Session, UserSessions

_FIELDS = "|"
_TYPES = ","
_COUNT = "="
_UNSEEN_FIRST = 2**53
_UNSEEN_LAST = 0
"""First and last seen of an older user document without them: a flush's own win (min/max)."""


@dataclass(frozen=True)
class UserFigures:
    """What Pulse keeps per user."""

    total: int
    first_ms: int
    last_ms: int
    types: dict[str, int] = field(default_factory=dict)
    sessions: UserSessions = field(default_factory=UserSessions)

    def plus(self, added: UserFigures, sessions: UserSessions) -> UserFigures:
        """These figures after `added` (a flush's figures for the same user), whose sessions
        are then `sessions`."""
        types = dict(self.types)
        for name, n in added.types.items():
            types[name] = types.get(name, 0) + n
        return UserFigures(
            self.total + added.total,
            min(self.first_ms, added.first_ms),
            max(self.last_ms, added.last_ms),
            types,
            sessions,
        )

    def with_sessions(self, sessions: UserSessions) -> UserFigures:
        return replace(self, sessions=sessions)

    def as_document(self) -> dict[str, Any]:
        """The figures as readers get them: {total, types, first_seen, last_seen}."""
        return {
            "total": self.total,
            "types": dict(self.types),
            "first_seen": _time(self.first_ms),
            "last_seen": _time(self.last_ms),
            "sessions": self.sessions.count,
        }


def pack(figures: UserFigures) -> str:
    """The stored string of `figures`."""
    types = _TYPES.join(f"{name}{_COUNT}{n}" for name, n in figures.types.items() if n)
    fields = [str(figures.total), str(figures.first_ms), str(figures.last_ms), types]
    current = figures.sessions.current
    if current is not None:
        fields += [
            str(figures.sessions.count),
            str(current.start_ms),
            str(current.last_ms),
            str(current.events),
        ]
    return _FIELDS.join(fields)


def unpack(stored: Any) -> UserFigures:
    """A user's figures from its bucket: the string, or the document of older buckets."""
    if isinstance(stored, dict):
        return UserFigures(
            int(stored.get("total", 0)),
            _ms(stored.get("first_seen"), _UNSEEN_FIRST),
            _ms(stored.get("last_seen"), _UNSEEN_LAST),
            {name: int(n) for name, n in stored.get("types", {}).items()},
        )
    total, first, last, types, *sessions = str(stored).split(_FIELDS)
    counts = (pair.split(_COUNT) for pair in types.split(_TYPES) if pair)
    return UserFigures(
        int(total),
        int(first),
        int(last),
        {name: int(n) for name, n in counts},
        _sessions(sessions),
    )


def _sessions(fields: list[str]) -> UserSessions:
    if not fields:
        return UserSessions()
    count, start, last, events = (int(value) for value in fields)
    return UserSessions(count, Session(start, last, events))


def stored_total(stored: Any) -> int:
    """A stored user's total, without reading the rest."""
    if isinstance(stored, dict):
        return int(stored.get("total", 0))
    return int(str(stored).split(_FIELDS, 1)[0])


def _ms(moment: Any, unseen: int) -> int:
    if not isinstance(moment, datetime):
        return unseen
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
