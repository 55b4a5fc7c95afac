"""Key groups: the unit in which keyed state is partitioned, snapshotted and rescaled.

Every key is hashed into one of ``max_parallelism`` key groups, and each parallel subtask owns
one contiguous range of key groups. Routing a record, storing its state and redistributing
state when the parallelism changes all go through the functions here, so they agree by
construction. Python's built-in ``hash()`` of ``str``/``bytes`` is salted per process, which
would send the same key to different subtasks in different TaskManager processes; the hash
here is computed from the key's value and is the same in every process and every run.

Equal keys must hash equally (``1``, ``1.0`` and ``True`` are the same dict key), because the
router cache and the heap backend look keys up by equality.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flinklet.errors import ApiUsageError, InvalidKeyError

__all__ = [
    "LOWER_BOUND_MAX_PARALLELISM",
    "UPPER_BOUND_MAX_PARALLELISM",
    "KeyGroupRange",
    "KeyGroupRouter",
    "assign_to_key_group",
    "check_max_parallelism",
    "compute_operator_index_for_key_group",
    "default_max_parallelism",
    "key_group_range_for_operator",
    "murmur_mix",
    "stable_hash",
]

LOWER_BOUND_MAX_PARALLELISM = 128
UPPER_BOUND_MAX_PARALLELISM = 1 << 15

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_NONE_HASH = 0x5BD1E995
_DOUBLE = struct.Struct(">d")
_UINT64 = struct.Struct(">Q")


# ---------------------------------------------------------------------------------------------
# Stable hashing
# ---------------------------------------------------------------------------------------------


def _hash_int(value: int) -> int:
    if _INT64_MIN <= value <= _INT64_MAX:
        folded = value & _M64
        return (folded ^ (folded >> 32)) & _M32
    words = (value.bit_length() + 32) // 32
    rest = value & ((1 << (32 * words)) - 1)
    result = 0
    while rest:
        result ^= rest & _M32
        rest >>= 32
    return result


def _hash_float(value: float) -> int:
    if value.is_integer():  # 2.0 == 2: equal keys must hash equally
        return _hash_int(int(value))
    bits: int = _UINT64.unpack(_DOUBLE.pack(value))[0]
    return (bits ^ (bits >> 32)) & _M32


def _hash_str(value: str) -> int:
    return zlib.crc32(value.encode("utf-8", "surrogatepass"))


def _hash_bytes(value: bytes | bytearray) -> int:
    return zlib.crc32(value)


def _hash_none(_value: None) -> int:
    return _NONE_HASH


def _hash_sequence(values: Any) -> int:
    result = 1
    for element in values:
        result = (31 * result + stable_hash(element)) & _M32
    return result


def _hash_frozenset(values: frozenset[Any]) -> int:
    # Order-independent (iteration order of a set depends on the process' str hash seed).
    return sum(stable_hash(element) for element in values) & _M32


def _hash_datetime(value: datetime.datetime) -> int:
    if value.tzinfo is not None and value.utcoffset() is not None:
        # Aware datetimes are equal when they denote the same instant.
        value = value.astimezone(datetime.UTC)
    return _hash_str(value.isoformat())


def _hash_isoformat(value: datetime.date | datetime.time) -> int:
    return _hash_str(value.isoformat())


def _hash_timedelta(value: datetime.timedelta) -> int:
    return _hash_int(value // datetime.timedelta(microseconds=1))


def _hash_decimal(value: decimal.Decimal) -> int:
    if value.is_finite():
        if value == value.to_integral_value():
            return _hash_int(int(value))
        as_float = float(value)
        if decimal.Decimal(as_float) == value:  # equal to that float, so hash like it
            return _hash_float(as_float)
        return _hash_str(str(value.normalize()))
    return _hash_str(str(value))


def _hash_uuid(value: uuid.UUID) -> int:
    return _hash_int(value.int)


_EXACT: dict[type, Callable[[Any], int]] = {
    int: _hash_int,
    bool: _hash_int,
    str: _hash_str,
    float: _hash_float,
    bytes: _hash_bytes,
    bytearray: _hash_bytes,
    tuple: _hash_sequence,
    list: _hash_sequence,
    type(None): _hash_none,
    frozenset: _hash_frozenset,
    datetime.datetime: _hash_datetime,
    datetime.date: _hash_isoformat,
    datetime.time: _hash_isoformat,
    datetime.timedelta: _hash_timedelta,
    decimal.Decimal: _hash_decimal,
    uuid.UUID: _hash_uuid,
}


def _no_stable_hash(key: Any) -> InvalidKeyError:
    return InvalidKeyError(
        f"key of type {type(key).__qualname__} returned by the key selector has no stable hash "
        "across processes; return a str, int, bytes, float, bool or tuple of them from the key "
        "selector"
    )


def _hash_other(key: Any) -> int:
    """Subclasses and structured keys (slow path; the exact-type table handles the rest)."""
    if isinstance(key, enum.Enum):
        return stable_hash(key.value)
    if isinstance(key, bool | int):
        return _hash_int(int(key))
    if isinstance(key, float):
        return _hash_float(float(key))
    if isinstance(key, str):
        return _hash_str(str(key))
    if isinstance(key, bytes | bytearray):
        return _hash_bytes(key)
    if isinstance(key, tuple | list):  # named tuples included: they equal plain tuples
        return _hash_sequence(key)
    if isinstance(key, datetime.datetime):
        return _hash_datetime(key)
    if isinstance(key, datetime.date | datetime.time):
        return _hash_isoformat(key)
    if isinstance(key, datetime.timedelta):
        return _hash_timedelta(key)
    if isinstance(key, decimal.Decimal):
        return _hash_decimal(key)
    if isinstance(key, uuid.UUID):
        return _hash_uuid(key)
    if isinstance(key, frozenset):
        return _hash_frozenset(key)
    if hasattr(key, "_fields") and hasattr(key, "__iter__"):  # Row-like records
        return _hash_sequence(key)
    if dataclasses.is_dataclass(key) and not isinstance(key, type):
        params = getattr(key, "__dataclass_params__", None)
        if params is not None and params.eq:  # equality is by field values
            return _hash_sequence(
                getattr(key, f.name) for f in dataclasses.fields(key) if f.compare
            )
    raise _no_stable_hash(key)


def stable_hash(key: Any) -> int:
    """A 32-bit unsigned hash of ``key`` that is the same in every process and every run.

    >>> stable_hash("sensor_1") == stable_hash("sensor_1")
    True
    """
    hasher = _EXACT.get(type(key))
    if hasher is not None:
        return hasher(key)
    return _hash_other(key)


def murmur_mix(h: int) -> int:
    """MurmurHash3's 32-bit finalizer: spreads every input bit over the whole output."""
    h &= _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def assign_to_key_group(key: Any, max_parallelism: int) -> int:
    """The key group of ``key`` in ``[0, max_parallelism)``."""
    return murmur_mix(stable_hash(key)) % max_parallelism


# ---------------------------------------------------------------------------------------------
# Key-group ranges and max parallelism
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyGroupRange:
    """Key groups ``start..end``, both inclusive; empty when ``end < start``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start - 1:
            raise ApiUsageError(f"invalid key-group range [{self.start}, {self.end}]")

    @staticmethod
    def empty() -> KeyGroupRange:
        return KeyGroupRange(0, -1)

    def __contains__(self, key_group: object) -> bool:
        return isinstance(key_group, int) and self.start <= key_group <= self.end

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end + 1))

    def __len__(self) -> int:
        return max(0, self.end - self.start + 1)

    def is_empty(self) -> bool:
        return self.end < self.start

    def intersection(self, other: KeyGroupRange) -> KeyGroupRange:
        start = max(self.start, other.start)
        end = min(self.end, other.end)
        return KeyGroupRange(start, end) if start <= end else KeyGroupRange.empty()

    def __repr__(self) -> str:
        return f"KeyGroupRange({self.start}..{self.end})"


def check_max_parallelism(max_parallelism: int) -> int:
    """Return ``max_parallelism`` if it is a valid number of key groups, else raise."""
    if (
        isinstance(max_parallelism, bool)
        or not isinstance(max_parallelism, int)
        or not 1 <= max_parallelism <= UPPER_BOUND_MAX_PARALLELISM
    ):
        raise ApiUsageError(
            f"max parallelism must be an int between 1 and {UPPER_BOUND_MAX_PARALLELISM} "
            f"(inclusive), got {max_parallelism!r}"
        )
    return max_parallelism


def _check_parallelism(max_parallelism: int, parallelism: int) -> None:
    check_max_parallelism(max_parallelism)
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise ApiUsageError(f"parallelism must be a positive int, got {parallelism!r}")
    if parallelism > max_parallelism:
        raise ApiUsageError(
            f"parallelism {parallelism} is larger than the max parallelism {max_parallelism}; "
            "raise the max parallelism (set_max_parallelism) or lower the parallelism"
        )


def _next_power_of_two(value: int) -> int:
    return 1 if value <= 1 else 1 << (value - 1).bit_length()


def default_max_parallelism(parallelism: int) -> int:
    """Flink's default: ``min(max(nextPow2(p + p // 2), 128), 32768)``."""
    return min(
        max(_next_power_of_two(parallelism + parallelism // 2), LOWER_BOUND_MAX_PARALLELISM),
        UPPER_BOUND_MAX_PARALLELISM,
    )


def compute_operator_index_for_key_group(
    max_parallelism: int, parallelism: int, key_group: int
) -> int:
    """The subtask index (of ``parallelism``) that owns ``key_group``."""
    return key_group * parallelism // max_parallelism


def key_group_range_for_operator(
    max_parallelism: int, parallelism: int, operator_index: int
) -> KeyGroupRange:
    """The contiguous key groups owned by subtask ``operator_index`` of ``parallelism``."""
    _check_parallelism(max_parallelism, parallelism)
    if not 0 <= operator_index < parallelism:
        raise ApiUsageError(
            f"subtask index {operator_index} is out of range for parallelism {parallelism}"
        )
    start = (operator_index * max_parallelism + parallelism - 1) // parallelism
    end = ((operator_index + 1) * max_parallelism + parallelism - 1) // parallelism - 1
    return KeyGroupRange(start, end)


# ---------------------------------------------------------------------------------------------
# Routing on the record path
# ---------------------------------------------------------------------------------------------


def _unhashable(key: Any) -> InvalidKeyError:
    shown = repr(key)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return InvalidKeyError(
        f"key_by: the key selector returned an unhashable {type(key).__qualname__} ({shown}); "
        "keys must be hashable and have a stable hash: return a tuple instead of a list "
        "(e.g. key_by(lambda r: (r[0], r[1]))), and a str, int or tuple instead of a dict or set"
    )


class _ChannelCache(dict[Any, int]):
    """Key -> channel; a miss computes the channel in ``__missing__`` (no exception raised on
    the record path) and the cache is dropped when it reaches its limit."""

    __slots__ = ("_channel_of_group", "_limit", "_max_parallelism")

    def __init__(self, channel_of_group: list[int], max_parallelism: int, limit: int) -> None:
        super().__init__()
        self._channel_of_group = channel_of_group
        self._max_parallelism = max_parallelism
        self._limit = limit

    def __missing__(self, key: Any) -> int:
        channel = self._channel_of_group[murmur_mix(stable_hash(key)) % self._max_parallelism]
        if len(self) >= self._limit:
            self.clear()
        self[key] = channel
        return channel


class KeyGroupRouter:
    """Maps keys to output channels (downstream subtasks) for ``key_by``.

    Repeated keys cost one dict lookup: the channel of every key seen is cached, and the cache
    is dropped when it reaches ``cache_limit`` entries so memory stays bounded.

    >>> KeyGroupRouter(128, 4).channel_for("sensor_1") in range(4)
    True
    """

    __slots__ = ("_cache", "_channel_of_group", "max_parallelism", "num_channels")

    def __init__(self, max_parallelism: int, num_channels: int, cache_limit: int = 200_000) -> None:
        _check_parallelism(max_parallelism, num_channels)
        self.max_parallelism = max_parallelism
        self.num_channels = num_channels
        self._channel_of_group = [
            compute_operator_index_for_key_group(max_parallelism, num_channels, key_group)
            for key_group in range(max_parallelism)
        ]
        self._cache = _ChannelCache(self._channel_of_group, max_parallelism, max(1, cache_limit))

    def channel_for(self, key: Any) -> int:
        """The channel (subtask index) that owns ``key``."""
        try:
            return self._cache[key]
        except InvalidKeyError:
            raise
        except TypeError:
            raise _unhashable(key) from None

    def key_group_for(self, key: Any) -> int:
        """The key group of ``key`` (not cached)."""
        return murmur_mix(stable_hash(key)) % self.max_parallelism

    def channel_for_key_group(self, key_group: int) -> int:
        """The channel that owns ``key_group``."""
        return self._channel_of_group[key_group]
