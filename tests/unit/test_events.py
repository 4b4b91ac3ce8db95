"""The wire format: compact JSON in a fixed field order."""

from __future__ import annotations

import numpy as np
import orjson
import polars as pl

from pulse.events import FIELDS, encode


def test_encode_is_compact_json_in_wire_order() -> None:
    events = pl.DataFrame(
        {
            "schema_version": [1],
            "timestamp": [1_795_795_200_123],
            "interaction_type": ["click"],
            "item_id": ["i3"],
            "user_id": ["u17"],
            "event_id": ["7f3a9c01d2e4-42"],
        }
    )
    assert encode(events).to_list() == [
        b'{"event_id":"7f3a9c01d2e4-42","user_id":"u17","item_id":"i3",'
        b'"interaction_type":"click","timestamp":1795795200123,"schema_version":1}'
    ]


def test_encode_equals_a_general_json_encoder() -> None:
    rng = np.random.default_rng(3)
    events = pl.DataFrame(
        {
            "event_id": [f"run-{n}" for n in range(500)],
            "user_id": [f"u{n}" for n in rng.integers(0, 10**9, 500)],
            "item_id": [f"i:{n}_x-y" for n in rng.integers(0, 10**9, 500)],
            "interaction_type": rng.choice(["view", "add_to_cart", "x9"], 500).tolist(),
            "timestamp": rng.integers(-(10**12), 10**13, 500),
            "schema_version": [1] * 500,
        }
    )
    assert encode(events).to_list() == [orjson.dumps(row) for row in events.iter_rows(named=True)]


def test_schema_names_every_field_once() -> None:
    assert FIELDS == (
        "event_id",
        "user_id",
        "item_id",
        "interaction_type",
        "timestamp",
        "schema_version",
    )
