"""In-memory stand-ins for the unit tests (bytewax-style test sources and sinks).

`MemoryDatabase` speaks the part of pymongo's `Database` API that Pulse uses, with MongoDB's
semantics for it: the guarded upserts answer "duplicate key" when the guard does not match an
existing document, exactly as MongoDB and FerretDB do, so the writer's exactly-once logic runs
unchanged. `ListSource` is a Kafka source that hands out prepared micro-batches.
Integration tests use the real services; these are for the pure-logic and crash tests.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pymongo import UpdateOne

from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.ingest.validate import DEAD_SCHEMA, Verdict
from pulse.pipeline.apply import BatchReport, BatchWriter
from pulse.pipeline.entities import EntityBuffer
from pulse.pipeline.target import Target
from pulse.store.writes import DUPLICATE_KEY

Doc = dict[str, Any]


def _get(doc: Doc, dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _set(doc: Doc, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


class _Missing:
    pass


_MISSING = _Missing()


def _compare(value: Any, op: str, arg: Any) -> bool:
    present = value is not _MISSING
    if op in {"$in", "$nin"}:
        return (present and value in arg) == (op == "$in")
    if op == "$ne":
        return bool((value if present else None) != arg)
    if op == "$not":
        return not _matches_condition(value, arg)
    if op == "$exists":
        return present == bool(arg)
    if not present or value is None:
        return False
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "$gte": lambda a, b: a >= b,
        "$gt": lambda a, b: a > b,
        "$lte": lambda a, b: a <= b,
        "$lt": lambda a, b: a < b,
    }
    return comparisons[op](value, arg)


def _matches_condition(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict) or not any(k.startswith("$") for k in condition):
        return bool(value == condition)
    return all(_compare(value, op, arg) for op, arg in condition.items())


def matches(doc: Doc, query: Doc) -> bool:
    return all(_matches_condition(_get(doc, key), cond) for key, cond in query.items())


def _apply_update(doc: Doc, update: Doc, inserting: bool) -> None:
    for op, fields in update.items():
        for key, value in fields.items():
            current = _get(doc, key)
            if op == "$set" or (op == "$setOnInsert" and inserting):
                _set(doc, key, copy.deepcopy(value))
            elif op == "$inc":
                _set(doc, key, (0 if current is _MISSING else current) + value)
            elif op == "$max":
                _set(doc, key, value if current is _MISSING else max(current, value))
            elif op == "$min":
                _set(doc, key, value if current is _MISSING else min(current, value))
            elif op == "$pullAll":
                _set(
                    doc,
                    key,
                    [v for v in ([] if current is _MISSING else current) if v not in value],
                )
            elif op == "$addToSet":
                had = [] if current is _MISSING else current
                added = value["$each"] if isinstance(value, dict) else [value]
                _set(doc, key, [*had, *(v for v in dict.fromkeys(added) if v not in had)])
            elif op == "$push":
                _set(doc, key, [*([] if current is _MISSING else current), value])
            elif op == "$unset":
                *parents, last = key.split(".")
                target = _get(doc, ".".join(parents)) if parents else doc
                if isinstance(target, dict):
                    target.pop(last, None)
            elif op != "$setOnInsert":
                raise NotImplementedError(op)


@dataclass
class _Result:
    modified_count: int = 0
    upserted_id: Any = None
    upserted_count: int = 0
    deleted_count: int = 0
    upserted_ids: dict[int, Any] = field(default_factory=dict)


class MemoryCollection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.docs: dict[Any, Doc] = {}

    def _candidates(self, query: Doc) -> list[Doc]:
        """The documents `query` may match: looked up by `_id` when it names ids (as the
        `_id` index does), else all of them. `matches` still decides."""
        wanted = query.get("_id", _MISSING)
        if isinstance(wanted, dict) and set(wanted) == {"$in"}:
            ids = wanted["$in"]
        elif wanted is _MISSING or isinstance(wanted, dict):
            return list(self.docs.values())
        else:
            ids = [wanted]
        return [self.docs[i] for i in dict.fromkeys(ids) if i in self.docs]

    def find(self, query: Doc | None = None, projection: Doc | None = None) -> Iterator[Doc]:
        for doc in self._candidates(query or {}):
            if matches(doc, query or {}):
                yield copy.deepcopy(doc)

    def find_one(self, query: Doc | None = None, projection: Doc | None = None) -> Doc | None:
        return next(self.find(query), None)

    def estimated_document_count(self) -> int:
        return len(self.docs)

    def count_documents(self, query: Doc) -> int:
        return sum(1 for _ in self.find(query))

    def insert_one(self, doc: Doc) -> _Result:
        if doc["_id"] in self.docs:
            raise KeyError(f"duplicate key {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        return _Result(upserted_id=doc["_id"])

    def update_one(self, query: Doc, update: Doc, upsert: bool = False) -> _Result:
        """Returns the result; raises DuplicateKey (as a dict error) through `_update`."""
        result, error = self._update(query, update, upsert)
        if error:
            raise KeyError(error)
        return result

    def _update(self, query: Doc, update: Doc, upsert: bool) -> tuple[_Result, str | None]:
        for doc in self._candidates(query):
            if matches(doc, query):
                before = copy.deepcopy(doc)
                _apply_update(doc, update, inserting=False)
                return _Result(modified_count=int(doc != before)), None
        if not upsert:
            return _Result(), None
        new: Doc = {k: v for k, v in query.items() if not isinstance(v, dict)}
        if new.get("_id") in self.docs:
            return _Result(), f"E11000 duplicate key {new['_id']}"
        _apply_update(new, update, inserting=True)
        self.docs[new["_id"]] = new
        return _Result(upserted_id=new["_id"], upserted_count=1), None

    def find_one_and_update(
        self, query: Doc, update: Doc, upsert: bool = False, return_document: bool = False
    ) -> Doc | None:
        self.update_one(query, update, upsert=upsert)
        return self.find_one(query if "_id" not in query else {"_id": query["_id"]})

    def delete_one(self, query: Doc) -> _Result:
        for doc in self._candidates(query):
            if matches(doc, query):
                del self.docs[doc["_id"]]
                return _Result(deleted_count=1)
        return _Result()

    def delete_many(self, query: Doc) -> _Result:
        doomed = [doc["_id"] for doc in self._candidates(query) if matches(doc, query)]
        for key in doomed:
            del self.docs[key]
        return _Result(deleted_count=len(doomed))

    def bulk_write(self, requests: list[UpdateOne], ordered: bool = True) -> _Result:
        total = _Result()
        for index, request in enumerate(requests):
            # pymongo keeps the statement in private fields; the fake reads them back.
            query: Doc = dict(request._filter)
            update: Doc = dict(request._doc)  # type: ignore[arg-type]
            result = self.update_one(query, update, upsert=bool(request._upsert))
            total.modified_count += result.modified_count
            total.upserted_count += result.upserted_count
            if result.upserted_id is not None:
                total.upserted_ids[index] = result.upserted_id
        return total

    def create_index(self, keys: Any) -> str:
        return "index"


class MemoryDatabase:
    """A pymongo `Database` double: collections by item or attribute, and `command('update')`."""

    def __init__(self) -> None:
        self.collections: dict[str, MemoryCollection] = {}

    def __getitem__(self, name: str) -> MemoryCollection:
        return self.collections.setdefault(name, MemoryCollection(name))

    def list_collection_names(self) -> list[str]:
        return [name for name, collection in self.collections.items() if collection.docs]

    def drop_collection(self, name: str) -> None:
        self.collections.pop(name, None)

    def __getattr__(self, name: str) -> MemoryCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def command(self, name: str, collection: str, *, updates: list[Doc], ordered: bool) -> Doc:
        if name != "update":
            raise NotImplementedError(name)
        target = self[collection]
        reply: Doc = {"n": 0, "nModified": 0, "upserted": [], "writeErrors": []}
        for index, statement in enumerate(updates):
            result, error = target._update(
                statement["q"], statement["u"], bool(statement.get("upsert"))
            )
            if error:
                reply["writeErrors"].append(
                    {"index": index, "code": DUPLICATE_KEY, "errmsg": error}
                )
                if ordered:
                    break
                continue
            reply["nModified"] += result.modified_count
            if result.upserted_id is not None:
                reply["upserted"].append({"index": index, "_id": result.upserted_id})
        if not reply["writeErrors"]:
            del reply["writeErrors"]
        return reply


@dataclass
class ListSource:
    """A Kafka source double for the drain loop: hands out prepared batches, then nothing."""

    batches: list[MicroBatch]
    assigned: set[int] = field(default_factory=lambda: {0})
    replays: list[BatchReport] = field(default_factory=list)
    flushes: list[BatchReport] = field(default_factory=list)
    polls: int = 0
    flush_calls: int = 0
    hand_overs: int = 0
    held_at_poll: int | None = None
    """The poll before which flushes were held (hold_flushes), if they were."""

    def poll_batch(
        self, max_events: int | None = None, max_wait: float | None = None
    ) -> MicroBatch | None:
        self.polls += 1
        return self.batches.pop(0) if self.batches else None

    def lag(self) -> dict[int, int]:
        return dict.fromkeys(self.assigned, sum(batch.size for batch in self.batches))

    def caught_up(self) -> bool:
        return not any(self.lag().values())

    def flush_due(self) -> None:
        pass

    def flush_entities(self) -> None:
        self.flush_calls += 1

    def hold_flushes(self) -> None:
        if self.held_at_poll is None:
            self.held_at_poll = self.polls + 1

    def hand_over(self) -> None:
        self.hand_overs += 1


def apply_batch(writer: BatchWriter, batch: MicroBatch) -> BatchReport:
    """Write a batch's counts, as the consumer does (its entities wait for a flush)."""
    return writer.apply(batch, Target.polled(batch, fresh=False))


def flush(writer: BatchWriter, reports: list[BatchReport]) -> BatchReport:
    """One entity flush of applied batches, gathered as the consumer gathers them."""
    waiting = EntityBuffer(seconds=0, max_events=1)
    for report in reports:
        if report.verdict is not None:
            waiting.add(report.batch_id, report.ranges, report.verdict.events)
    pending = waiting.take()
    assert pending is not None, "nothing to flush"
    return writer.flush(pending)


def apply_now(writer: BatchWriter, batch: MicroBatch) -> BatchReport:
    """A batch's counts, then its entity flush at once (PULSE_CONSUMER_ENTITY_FLUSH_SECONDS=0)."""
    report = apply_batch(writer, batch)
    flush(writer, [report])
    return report


def written(batch_id: str, ranges: list[OffsetRange], events: pl.DataFrame) -> BatchReport:
    """The report of a write of `events` (all valid) over `ranges`, one document written."""
    return BatchReport(
        batch_id=batch_id,
        ranges=ranges,
        records=events.height,
        valid=events.height,
        dead_lettered=0,
        docs_written=1,
        already_applied=0,
        new_users=0,
        new_items=0,
        replay=False,
        seconds={"write": 0.01},
        verdict=Verdict(events, DEAD_SCHEMA.to_frame(), {}),
    )
