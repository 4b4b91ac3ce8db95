"""Each stage's package keeps to its job: the rules of docs/architecture.md, read from the
imports of the source."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.imports import imported_modules

PULSE = Path(__file__).resolve().parents[2] / "pulse"
KAFKA_CLIENTS = ("confluent_kafka", "pulse.kafka")

LAYERS: tuple[tuple[str, ...], ...] = (
    ("events", "access"),  # the event schema, the login allowlist (pure)
    ("config",),  # every setting
    ("ingest",),  # batches, validation, aggregation (pure)
    ("kafka", "store"),  # the two I/O sides, neither importing the other
    ("preflight", "prefect_api", "stack"),  # service checks, Prefect's address, the local stack
    ("generate", "alerts"),  # the producer side; alert rules and their engine
    ("pipeline", "metrics"),  # the consumer: apply, flush, drain, replay; /metrics
    ("cli",),  # the `pulse` commands
)
"""The order of pulse's packages (docs/architecture.md, "Import order"): each imports only
its own package and those of earlier layers; packages of one layer do not import each other."""


def _importing(folder: Path, names: tuple[str, ...]) -> dict[str, list[str]]:
    """Modules under `folder` that import any of `names` (or a module inside one), and which."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        hits = sorted(
            module
            for module in imported_modules(path)
            if any(module == name or module.startswith(f"{name}.") for name in names)
        )
        if hits:
            found[str(path.relative_to(PULSE.parent))] = hits
    return found


def test_the_mongodb_layer_holds_no_kafka_client() -> None:
    # Pipeline lag asks Kafka in pulse/kafka/lag.py, given the offsets store/ read.
    assert _importing(PULSE / "store", KAFKA_CLIENTS) == {}


def test_kafka_reading_and_writing_import_no_database() -> None:
    assert _importing(PULSE / "kafka", ("pymongo", "pulse.store")) == {}


def _layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def _package(module: str) -> str:
    return module.split(".")[1].removesuffix(".py")


def test_every_package_imports_only_its_own_and_earlier_layers() -> None:
    packages = {path.stem if path.is_file() else path.name for path in PULSE.iterdir()}
    packages -= {"__init__", "__pycache__"}
    assert packages == {package for layer in LAYERS for package in layer}  # each one placed
    breaking = {}
    for path in sorted(PULSE.rglob("*.py")):
        own = path.relative_to(PULSE).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        later = sorted(
            module
            for module in imported_modules(path)
            if module.startswith("pulse.")
            and _package(module) != own
            and _layer_of(_package(module)) >= _layer_of(own)
        )
        if later:
            breaking[str(path.relative_to(PULSE.parent))] = later
    assert breaking == {}


MONGODB_CALLS = frozenset(
    {
        "find",
        "find_one",
        "find_one_and_update",
        "update_one",
        "update_many",
        "replace_one",
        "insert_one",
        "insert_many",
        "delete_one",
        "delete_many",
        "aggregate",
        "bulk_write",
        "count_documents",
        "drop_collection",
        "create_index",
    }
)
"""Collection methods that read or write documents (pymongo's names)."""
OUTSIDE_STORE = ("pulse", "flows", "tasks", "deployments", "streamlit_app")


def _mongodb_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return sorted(
        f"{node.lineno}: .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MONGODB_CALLS
    )


def test_only_the_store_queries_or_writes_mongodb() -> None:
    root = PULSE.parent
    found = {
        str(path.relative_to(root)): calls
        for folder in OUTSIDE_STORE
        for path in sorted((root / folder).rglob("*.py"))
        if PULSE / "store" not in path.parents and (calls := _mongodb_calls(path))
    }
    assert found == {}
