"""An entity flush unlists exactly its batches, also while another writer lists new ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from pymongo.database import Database

from pulse.ingest.batch import OffsetRange, batch_id
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.schema import ENTITIES_NEXT, ENTITY_BATCHES, OFFSETS, offsets_id
from tests.fakes import MemoryDatabase

TOPIC = "t"


def test_a_batch_listed_while_a_flush_unlists_its_own_stays_listed() -> None:
    memory = MemoryDatabase()
    db = cast(Database[Document], memory)
    first = [OffsetRange(0, 0, 99)]
    writes.advance_offsets(db, TOPIC, first, batch_id(TOPIC, first))
    late = [OffsetRange(0, 100, 199)]
    offsets = memory[OFFSETS]
    read = offsets.find

    def find_then_list(*args: Any, **kwargs: Any) -> Iterator[Document]:
        docs = list(read(*args, **kwargs))  # the flush has read the list...
        writes.advance_offsets(db, TOPIC, late, batch_id(TOPIC, late))  # ...a retry lists one
        return iter(docs)

    offsets.find = find_then_list  # type: ignore[method-assign]
    writes.advance_entity_offsets(db, TOPIC, first)
    offsets.find = read  # type: ignore[method-assign]

    doc = offsets.find_one({"_id": offsets_id(TOPIC, 0)})
    assert doc is not None
    assert doc[ENTITY_BATCHES] == [batch_id(TOPIC, late)]
    assert doc[ENTITIES_NEXT] == 100
