"""Each stage's package keeps to its job: the rules of docs/architecture.md, read from the
imports of the source."""

from __future__ import annotations

from pathlib import Path

from tests.imports import imported_modules

PULSE = Path(__file__).resolve().parents[2] / "pulse"
KAFKA_CLIENTS = ("confluent_kafka", "pulse.kafka")


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
