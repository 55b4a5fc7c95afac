"""Key-group hashing and ranges: stable across processes, and consistent with each other."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import os
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import pytest

from flinklet._private.state.keygroups import (
    KeyGroupRange,
    KeyGroupRouter,
    assign_to_key_group,
    check_max_parallelism,
    compute_operator_index_for_key_group,
    default_max_parallelism,
    key_group_range_for_operator,
    murmur_mix,
    stable_hash,
)
from flinklet.errors import ApiUsageError, InvalidKeyError

SAMPLE_KEYS_SOURCE = """[
    "", "a", "sensor_1", "héllo wörld", "日本語", b"", b"\\x00\\xff", 0, 1, -1, 2**40,
    -(2**63), 2**64 + 5, -(2**100), 1.5, -0.25, float("inf"), None, True, False,
    ("a", 1), ("a", ("b", 2.5)), (), ["x", "y"],
]"""


PLUS_ONE_HOUR = datetime.timezone(datetime.timedelta(hours=1))


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


Pair = collections.namedtuple("Pair", ["first", "second"])


class Point(NamedTuple):
    x: int
    y: str


@dataclass(frozen=True)
class UserKey:
    tenant: str
    user: int


def test_hash_is_the_same_in_processes_with_different_hash_seeds() -> None:
    program = (
        "import json\n"
        "from flinklet._private.state.keygroups import stable_hash\n"
        f"keys = {SAMPLE_KEYS_SOURCE}\n"
        "print(json.dumps([stable_hash(k) for k in keys]))\n"
    )
    results = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        output = subprocess.run(
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
        ).stdout
        results.append(json.loads(output))
    keys = eval(SAMPLE_KEYS_SOURCE)
    assert results[0] == results[1] == [stable_hash(k) for k in keys]


def test_str_hash_is_crc32_of_utf8() -> None:
    assert stable_hash("sensor_1") == zlib.crc32(b"sensor_1")
    assert stable_hash("é") == zlib.crc32("é".encode())


def test_int_hash_folds_the_64_bit_halves() -> None:
    assert stable_hash(5) == 5
    assert stable_hash(-1) == 0
    assert stable_hash((7 << 32) | 3) == 7 ^ 3


def test_hash_fits_32_bits() -> None:
    for key in ("x" * 100, 2**200, -(2**200), 3.25, (1, 2, 3) * 20):
        assert 0 <= stable_hash(key) < 2**32


@pytest.mark.parametrize(
    "equal_keys",
    [
        (1, 1.0, True, decimal.Decimal(1), Level.LOW),
        (0, 0.0, -0.0, False),
        (1.5, decimal.Decimal("1.5")),
        (("a", 1), Pair("a", 1)),
        (
            datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.UTC),
            datetime.datetime(
                2024, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
            ),
        ),
        (datetime.timedelta(seconds=1), datetime.timedelta(milliseconds=1000)),
    ],
)
def test_equal_keys_hash_equally(equal_keys: tuple[object, ...]) -> None:
    assert len({stable_hash(k) for k in equal_keys}) == 1
    assert all(k == equal_keys[0] for k in equal_keys)


def test_structured_keys_have_stable_hashes() -> None:
    assert stable_hash(Point(1, "a")) == stable_hash((1, "a"))
    assert stable_hash(Color.RED) == stable_hash("red")
    assert stable_hash(UserKey("t", 7)) == stable_hash(("t", 7))
    assert stable_hash(datetime.date(2024, 5, 1)) == stable_hash("2024-05-01")
    assert stable_hash(uuid.UUID(int=5)) == 5
    assert stable_hash(frozenset({"a", "b"})) == stable_hash(frozenset({"b", "a"}))
    assert stable_hash(["a", 1]) == stable_hash(("a", 1))


def test_key_without_stable_hash_is_rejected_with_advice() -> None:
    with pytest.raises(InvalidKeyError) as excinfo:
        stable_hash(object())
    message = str(excinfo.value)
    assert "key of type object returned by the key selector has no stable hash" in message
    assert "return a str, int, bytes, float, bool or tuple of them" in message


def test_unsupported_element_inside_a_tuple_is_rejected() -> None:
    with pytest.raises(InvalidKeyError, match="no stable hash"):
        stable_hash(("a", object()))


def test_murmur_mix_is_murmur3_fmix32() -> None:
    assert murmur_mix(0) == 0
    assert murmur_mix(1) == 0x514E28B7
    sample = [murmur_mix(i) for i in range(10_000)]
    assert len(set(sample)) == len(sample)


def test_assign_to_key_group_is_in_range_and_deterministic() -> None:
    for key in ("a", "b", 17, ("x", 2)):
        group = assign_to_key_group(key, 128)
        assert 0 <= group < 128
        assert group == murmur_mix(stable_hash(key)) % 128
        assert group == assign_to_key_group(key, 128)


def test_keys_spread_over_key_groups() -> None:
    groups = {assign_to_key_group(f"user-{i}", 128) for i in range(5_000)}
    assert len(groups) == 128


def test_flink_range_formula() -> None:
    assert [key_group_range_for_operator(128, 3, i) for i in range(3)] == [
        KeyGroupRange(0, 42),
        KeyGroupRange(43, 85),
        KeyGroupRange(86, 127),
    ]
    assert key_group_range_for_operator(128, 1, 0) == KeyGroupRange(0, 127)
    assert key_group_range_for_operator(4, 4, 2) == KeyGroupRange(2, 2)


@pytest.mark.parametrize("max_parallelism", [1, 7, 128, 1000, 4096])
def test_ranges_cover_every_key_group_exactly_once(max_parallelism: int) -> None:
    for parallelism in {1, 2, 3, 5, 7, max_parallelism}:
        if parallelism > max_parallelism:
            continue
        covered: list[int] = []
        for index in range(parallelism):
            key_groups = key_group_range_for_operator(max_parallelism, parallelism, index)
            assert len(key_groups) >= 1
            covered.extend(key_groups)
        assert covered == list(range(max_parallelism))


@pytest.mark.parametrize(("max_parallelism", "parallelism"), [(128, 3), (128, 7), (1000, 13)])
def test_operator_index_matches_range_membership(max_parallelism: int, parallelism: int) -> None:
    ranges = [
        key_group_range_for_operator(max_parallelism, parallelism, i) for i in range(parallelism)
    ]
    for key_group in range(max_parallelism):
        index = compute_operator_index_for_key_group(max_parallelism, parallelism, key_group)
        assert key_group in ranges[index]
        assert [i for i, r in enumerate(ranges) if key_group in r] == [index]


@pytest.mark.parametrize(
    ("parallelism", "expected"),
    [(1, 128), (2, 128), (85, 128), (86, 256), (100, 256), (128, 256), (1000, 2048),
     (20_000, 32_768), (30_000, 32_768)],
)  # fmt: skip
def test_default_max_parallelism(parallelism: int, expected: int) -> None:
    assert default_max_parallelism(parallelism) == expected


def test_check_max_parallelism() -> None:
    assert check_max_parallelism(1) == 1
    assert check_max_parallelism(32_768) == 32_768
    for bad in (0, -1, 32_769, True, "8", 1.0):
        with pytest.raises(ApiUsageError, match="max parallelism must be an int between 1 and"):
            check_max_parallelism(bad)  # type: ignore[arg-type]


def test_parallelism_above_max_parallelism_is_rejected() -> None:
    with pytest.raises(ApiUsageError, match="larger than the max parallelism"):
        key_group_range_for_operator(4, 5, 0)
    with pytest.raises(ApiUsageError, match="out of range"):
        key_group_range_for_operator(128, 2, 2)


def test_key_group_range_operations() -> None:
    key_groups = KeyGroupRange(3, 6)
    assert list(key_groups) == [3, 4, 5, 6]
    assert len(key_groups) == 4
    assert 3 in key_groups and 6 in key_groups
    assert 2 not in key_groups and 7 not in key_groups and "4" not in key_groups
    assert key_groups.intersection(KeyGroupRange(5, 10)) == KeyGroupRange(5, 6)
    assert key_groups.intersection(KeyGroupRange(7, 10)).is_empty()
    assert len(KeyGroupRange.empty()) == 0
    with pytest.raises(ApiUsageError):
        KeyGroupRange(5, 2)


def test_router_sends_each_key_to_the_subtask_owning_its_key_group() -> None:
    router = KeyGroupRouter(128, 3)
    for i in range(500):
        key = f"k{i}"
        channel = router.channel_for(key)
        assert channel == compute_operator_index_for_key_group(
            128, 3, assign_to_key_group(key, 128)
        )
        assert assign_to_key_group(key, 128) in key_group_range_for_operator(128, 3, channel)
        assert router.channel_for(key) == channel  # cached


def test_router_cache_is_bounded_and_stays_correct() -> None:
    router = KeyGroupRouter(128, 4, cache_limit=3)
    expected = {i: router.key_group_for(i) * 4 // 128 for i in range(20)}
    for _ in range(2):
        for key, channel in expected.items():
            assert router.channel_for(key) == channel
    assert len(router._cache) <= 3


def test_router_equal_keys_share_a_channel() -> None:
    router = KeyGroupRouter(128, 5)
    assert router.channel_for(3) == router.channel_for(3.0)
    assert router.channel_for(1.0) == router.channel_for(1) == router.channel_for(True)
    assert router.channel_for(Level.LOW) == router.channel_for(1)


@pytest.mark.parametrize("key", [["a", 1], {"a": 1}, {"a"}])
def test_router_rejects_unhashable_keys_with_advice(key: object) -> None:
    router = KeyGroupRouter(128, 2)
    with pytest.raises(InvalidKeyError) as excinfo:
        router.channel_for(key)
    message = str(excinfo.value)
    assert f"key_by: the key selector returned an unhashable {type(key).__name__}" in message
    assert "return a tuple instead of a list" in message


def test_router_rejects_keys_without_stable_hash() -> None:
    with pytest.raises(InvalidKeyError, match="has no stable hash across processes"):
        KeyGroupRouter(128, 2).channel_for(object())
