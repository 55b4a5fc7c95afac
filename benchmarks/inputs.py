"""The inputs of the non-Nexmark workloads, as functions of the record count alone.

The engine, the baseline and the peers (PyFlink, Bytewax, in their own virtualenvs)
rebuild the same input from ``n``; this module therefore imports nothing of Flinklet.
The Nexmark events are in ``benchmarks.nexmark``.

    >>> keyed_pairs(3, 2)
    [(0, 0), (1, 1), (0, 2)]
    >>> words(2)
    [('w107', 1700000000000), ('w158', 1700000000001)]
"""

from __future__ import annotations

__all__ = [
    "BASE_TIME_MS",
    "WORD_KEYS",
    "keyed_pairs",
    "mix",
    "numbers",
    "word_values",
    "words",
]

BASE_TIME_MS = 1_700_000_000_000  # event time of record 0; windows are aligned to it
WORD_KEYS = 1_000


def mix(i: int) -> int:
    """A 32-bit integer hash of ``i``: deterministic across interpreters, unlike hash()."""
    h = (i * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    return h ^ (h >> 16)


def numbers(n: int) -> list[int]:
    """``0 .. n-1``: the pipeline workloads."""
    return list(range(n))


def keyed_pairs(n: int, keys: int) -> list[tuple[int, int]]:
    """``(i % keys, i)``: the keyed workloads."""
    return [(i % keys, i) for i in range(n)]


def word_of(i: int, keys: int = WORD_KEYS) -> str:
    return f"w{mix(i) % keys}"


def words(n: int, keys: int = WORD_KEYS) -> list[tuple[str, int]]:
    """``(word, event time)``: one word of ``keys`` per millisecond of event time."""
    return [(f"w{mix(i) % keys}", BASE_TIME_MS + i) for i in range(n)]


def word_values(n: int, keys: int = WORD_KEYS) -> list[tuple[str, int, int]]:
    """``(word, value, event time)`` with ``value = i % 100``: the sliding aggregate."""
    return [(f"w{mix(i) % keys}", i % 100, BASE_TIME_MS + i) for i in range(n)]
