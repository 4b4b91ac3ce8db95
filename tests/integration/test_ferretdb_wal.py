"""FerretDB's SQLite WAL stays within its checkpoint while documents are rewritten (patch fix 5).

Every update and findAndModify reads a document and writes it back. Stock FerretDB kept the read
open during the write, so no automatic checkpoint ever completed and the WAL grew with every
statement (past 300 MB in a minute of entity flushes). This runs a FerretDB of its own with a
small checkpoint so that growth shows in a second.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from pymongo import ReturnDocument
from pymongo.database import Database

from pulse.config import Settings
from pulse.stack.mongo_server import MongoServer, ferretdb_command
from pulse.store.client import Document, mongo_client
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

CHECKPOINT_PAGES = 64
PAGE_BYTES = 4_096
WAL_BOUND = 4 * CHECKPOINT_PAGES * PAGE_BYTES
"""A checkpoint's worth of pages plus room for the commits around it: 1 MiB. Unpatched, the
rewrites below leave a WAL of more than 8 MiB."""
DOCUMENTS = 200
ROUNDS = 6


@pytest.fixture
def ferretdb(live_stack: Settings, tmp_path: Path) -> Iterator[tuple[Database[Document], Path]]:
    """A database on a FerretDB of its own, and the WAL file that database writes."""
    server = MongoServer(live_stack.mongo, live_stack.stack)
    if server.kind != "ferretdb":
        pytest.skip(f"the stack runs {server.kind}, not FerretDB: there is no WAL to check")
    (tmp_path / "data").mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = SecretStr(f"mongodb://127.0.0.1:{port}")
    own = MongoServer(live_stack.mongo.model_copy(update={"uri": uri}), live_stack.stack)
    command = ferretdb_command(
        server.ferretdb_binary(print), tmp_path, str(own.endpoint), CHECKPOINT_PAGES
    )
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(own.answers, timeout=30, what=f"FerretDB answering at {own.url}")
        with mongo_client(own.mongo) as client:
            yield client.wal, tmp_path / "data" / "wal.sqlite-wal"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _update_command(db: Database[Document]) -> None:
    statements = [{"q": {"_id": n}, "u": {"$inc": {"n": 1}}} for n in range(DOCUMENTS)]
    db.command("update", "docs", updates=statements, ordered=False)


def _find_and_modify(db: Database[Document]) -> None:
    for n in range(DOCUMENTS):
        after = db.docs.find_one_and_update(
            {"_id": n}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
        )
        assert after is not None


@pytest.mark.parametrize(
    "rewrite", [_update_command, _find_and_modify], ids=["update", "findAndModify"]
)
def test_rewriting_documents_keeps_the_wal_within_its_checkpoint(
    ferretdb: tuple[Database[Document], Path], rewrite: Callable[[Database[Document]], None]
) -> None:
    db, wal = ferretdb
    db.docs.insert_many([{"_id": n, "n": 0, "pad": "x" * 500} for n in range(DOCUMENTS)])
    largest = 0
    for _ in range(ROUNDS):
        rewrite(db)
        largest = max(largest, wal.stat().st_size)

    assert largest <= WAL_BOUND, f"WAL reached {largest:,} bytes (bound {WAL_BOUND:,})"
    assert {doc["n"] for doc in db.docs.find({}, {"n": 1})} == {ROUNDS}
