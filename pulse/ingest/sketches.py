"""HyperLogLog registers: approximate distinct counts that merge with `$max`.

Active users per minute cannot be summed across micro-batches (a user active in two batches
would count twice), and keeping every id per minute does not scale. A HyperLogLog sketch of
2^10 registers estimates a distinct count within about 3% (1.04 / sqrt(1024)); merging two
sketches is a register-wise maximum, which MongoDB's `$max` does in place and which is
idempotent, so a replayed batch cannot inflate it.

The estimate is Ertl's improved estimator (O. Ertl, "New cardinality estimation algorithms
for HyperLogLog sketches", 2017, algorithm 6): it reads the same registers as the classic
one, without its bias between linear counting and the raw estimate (+4% at 2,500 distinct
values, +1.6% at 5,000 with 1,024 registers, the range a day of the default run lives in).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import numpy as np

PRECISION = 10
REGISTERS = 1 << PRECISION
RANK_BITS = 64 - PRECISION
"""Hash bits a rank is read from: ranks run from 1 to RANK_BITS + 1 (all of them zero)."""
_ALPHA_INFINITY = 1 / (2 * math.log(2))
Register = TypeVar("Register", int, str)
"""A register's name: its index, or 'r<index>' as stored."""


def _hash64(value: str) -> int:
    """A stable 64-bit hash (same across processes, versions and machines)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def registers(values: Iterable[str]) -> dict[int, int]:
    """The non-zero registers of a sketch of `values`: register index -> rank."""
    bits = 64 - PRECISION
    mask = (1 << bits) - 1
    best: dict[int, int] = {}
    for value in values:
        hashed = _hash64(value)
        index = hashed >> bits
        rank = bits - (hashed & mask).bit_length() + 1  # position of the first 1-bit
        if rank > best.get(index, 0):
            best[index] = rank
    return best


def union(sketches: Iterable[Mapping[Register, int]]) -> dict[Register, int]:
    """The sketch of the union of the sets (a register-wise maximum), registers named by
    index or as stored ('r<index>')."""
    merged: dict[Register, int] = {}
    for sketch in sketches:
        for index, rank in sketch.items():
            if rank > merged.get(index, 0):
                merged[index] = rank
    return merged


def union_by(
    sketches: Mapping[str, Mapping[int, int]], key: Callable[[str], str]
) -> dict[str, dict[int, int]]:
    """The sketches merged by `key` of their names (e.g. minutes by their day)."""
    grouped: dict[str, list[Mapping[int, int]]] = {}
    for name, sketch in sketches.items():
        grouped.setdefault(key(name), []).append(sketch)
    return {name: union(group) for name, group in grouped.items()}


def pack(sketch: Mapping[int, int]) -> bytes:
    """The registers as REGISTERS bytes, one rank each: one field to store and read, where
    REGISTERS fields take FerretDB milliseconds per document (fields merge with `$max`,
    bytes do not: for sketches written once, not merged in place)."""
    return bytes(sketch.get(index, 0) for index in range(REGISTERS))


def unpack(packed: bytes) -> dict[int, int]:
    """`pack`'s inverse: the non-zero registers."""
    return {index: rank for index, rank in enumerate(packed) if rank}


def estimate(sketch: Mapping[int, int] | Mapping[str, int]) -> float:
    """Estimated distinct count of a sketch (register index, or 'r<index>', -> rank)."""
    counts = np.zeros(RANK_BITS + 2, dtype=np.int64)  # registers holding each rank
    for rank in sketch.values():
        counts[rank] += 1
    counts[0] = REGISTERS - int(counts[1:].sum())
    if counts[0] == REGISTERS:
        return 0.0
    z = REGISTERS * _tau(1 - counts[RANK_BITS + 1] / REGISTERS)
    for rank in range(RANK_BITS, 0, -1):
        z = 0.5 * (z + counts[rank])
    z += REGISTERS * _sigma(counts[0] / REGISTERS)
    return float(_ALPHA_INFINITY * REGISTERS * REGISTERS / z)


def _sigma(x: float) -> float:
    """Ertl's sigma: the share of empty registers' part of the estimate (x < 1)."""
    y, z = 1.0, x
    while True:
        x *= x
        before = z
        z += x * y
        y += y
        if z == before:
            return z


def _tau(x: float) -> float:
    """Ertl's tau: the share of saturated registers' part of the estimate."""
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1 - x
    while True:
        x = math.sqrt(x)
        before = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if z == before:
            return z / 3
