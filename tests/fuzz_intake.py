"""Coverage-guided fuzzing of the intake with atheris (`make fuzz`).

Each input is one record and a Kafka timestamp. It is read by the per-record reader without
its safety net (an exception is a finding: atheris stops and prints the input), and gathered
into batches of `BATCH` records that go through tests/intake_checks.py:check_intake (both
readers, the verdict rule, every statement downstream). Seeds are valid events and the
hostile records of issue 23. Prints the inputs tried; a finding exits non-zero.

    uv run python -m tests.fuzz_intake [-atheris_runs=N] [libFuzzer options]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris
import orjson

with atheris.instrument_imports(include=["pulse"]):
    from pulse.ingest.validate import _parse_record
    from tests.intake_checks import RULES, batch_of, check_intake

BATCH = 1_000
NOW_MS = 1_795_737_600_000
_STAMP_BYTES = 8
_pending: list[tuple[bytes, int]] = []
_tried = [0]


def one_input(data: bytes) -> None:
    """One record: read alone, then, with the batch it completes, through the whole check."""
    provider = atheris.FuzzedDataProvider(data)
    stamp = NOW_MS if provider.ConsumeBool() else provider.ConsumeIntInRange(-1, 2**63 - 1)
    value = provider.ConsumeBytes(provider.remaining_bytes())
    _parse_record(value, RULES.max_record_bytes)
    _tried[0] += 1
    _pending.append((value, stamp))
    if len(_pending) >= BATCH:
        check_pending()


def check_pending() -> None:
    if _pending:
        check_intake(batch_of([v for v, _ in _pending], [s for _, s in _pending]))
        _pending.clear()


def seeds(folder: Path) -> None:
    """Valid events in the shapes producers send, and the hostile records of issue 23."""
    event = {"user_id": "u1", "item_id": "i1", "interaction_type": "view", "timestamp": NOW_MS}
    records = [
        orjson.dumps(event),
        orjson.dumps(event | {"event_id": "e1", "schema_version": 1}),
        orjson.dumps(event | {"timestamp": "2026-11-28T10:00:00.123Z", "user_id": 17}),
        orjson.dumps(event | {"timestamp": NOW_MS / 1000}),
        orjson.dumps(event | {"timestamp": "9" * 5_000}),
        b"[" * 1_100,
        b"\xff" * 64,
    ]
    for n, record in enumerate(records):
        (folder / f"seed-{n}").write_bytes(b"\x01" + record)  # ConsumeBool: True = now


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pulse-fuzz-") as corpus:
        seeds(Path(corpus))
        args = [sys.argv[0], *sys.argv[1:]]
        if not any(arg.startswith("-atheris_runs=") for arg in args):
            args.append("-atheris_runs=100000")
        args += ["-max_len=4096", corpus]
        atheris.Setup(args, one_input)
        try:
            atheris.Fuzz()
        finally:
            check_pending()
            print(f"fuzz_intake: {_tried[0]:,} inputs tried, no escape", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
