"""Batched reads of the RocksDB backend: a keyed operator prefetches the value state of a
batch's keys with one MultiGet, and every read in the batch sees exactly what a read from
the database would (writes, deletes, repeated keys, other namespaces, bulk writes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flinklet.datastream  # noqa: F401  # isort: skip
from flinklet._private.state.backend import VOID_NAMESPACE
from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.rocksdb import RocksDBKeyedStateBackend
from flinklet._private.state.rocksdb_states import encode_value
from flinklet.common import Types
from flinklet.datastream import (
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from flinklet.datastream.state import StateTtlConfig, ValueStateDescriptor
from flinklet.datastream.state_backend import EmbeddedRocksDBStateBackend
from flinklet.errors import StateError


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[RocksDBKeyedStateBackend]:
    b = RocksDBKeyedStateBackend(128, KeyGroupRange(0, 127), "t", tmp_path)
    yield b
    b.dispose()


def fill(backend: RocksDBKeyedStateBackend, state: Any, values: dict[Any, int]) -> None:
    for key, value in values.items():
        backend.current_key = key
        state.update(value)


def read_all(backend: RocksDBKeyedStateBackend, state: Any, keys: list[Any]) -> list[Any]:
    out = []
    for key in keys:
        backend.current_key = key
        out.append(state.value())
    return out


def test_a_state_the_last_batch_read_is_prefetched_and_served(
    backend: RocksDBKeyedStateBackend,
) -> None:
    state = backend.get_partitioned_state(ValueStateDescriptor("sum", None))
    fill(backend, state, {k: k * 10 for k in range(100)})
    keys = list(range(0, 120, 3))  # some without state
    read_all(backend, state, keys)  # the "previous batch" read the state
    backend.prefetch(keys)
    assert state.prefetched is not None
    assert len(state.prefetched) == len(keys)
    # the database is not asked again: close it and read everything from the batch
    db = backend.db
    state._db = None
    try:
        assert read_all(backend, state, keys) == [k * 10 if k < 100 else None for k in keys]
    finally:
        state._db = db
    backend.end_prefetch()
    assert state.prefetched is None


def test_writes_and_deletes_in_the_batch_are_read_back(
    backend: RocksDBKeyedStateBackend,
) -> None:
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    fill(backend, state, {"a": 1, "b": 2, "c": 3})
    read_all(backend, state, ["a", "b", "c"])
    batch = ["a", "b", "c", "a", "b", "d"]
    backend.prefetch(batch)
    backend.current_key = "a"
    state.update(state.value() + 100)
    backend.current_key = "b"
    state.clear()
    backend.current_key = "c"
    state.update(None)  # Flink: updating to null clears
    backend.current_key = "d"
    state.update("new")
    assert read_all(backend, state, batch) == [101, None, None, 101, None, "new"]
    backend.end_prefetch()
    # and the database holds the same
    assert read_all(backend, state, batch) == [101, None, None, 101, None, "new"]


def test_reads_are_counted_and_a_rarely_read_state_is_not_prefetched(
    backend: RocksDBKeyedStateBackend,
) -> None:
    often = backend.get_partitioned_state(ValueStateDescriptor("often", None))
    rarely = backend.get_partitioned_state(ValueStateDescriptor("rarely", None))
    never = backend.get_partitioned_state(ValueStateDescriptor("never", None))
    keys = list(range(40))
    backend.prefetch(keys)  # first batch: nothing was read yet
    assert (often.prefetched, rarely.prefetched, never.prefetched) == (None, None, None)
    read_all(backend, often, keys)
    read_all(backend, rarely, keys[:5])  # fewer than a quarter of the batch
    backend.end_prefetch()
    backend.prefetch(keys)
    assert often.prefetched is not None
    assert rarely.prefetched is None
    assert never.prefetched is None
    assert often.reads == 0  # counted afresh for the next batch
    backend.end_prefetch()


def test_other_namespaces_read_from_the_database(backend: RocksDBKeyedStateBackend) -> None:
    state = backend.get_partitioned_state(ValueStateDescriptor("w", None))
    fill(backend, state, {1: 10, 2: 20})
    state.set_current_namespace("window-1")
    fill(backend, state, {1: 11, 2: 21})
    state.set_current_namespace(VOID_NAMESPACE)
    read_all(backend, state, [1, 2])
    backend.prefetch([1, 2])
    assert read_all(backend, state, [1, 2]) == [10, 20]
    state.set_current_namespace("window-1")
    assert read_all(backend, state, [1, 2]) == [11, 21]
    state.set_current_namespace(VOID_NAMESPACE)
    backend.end_prefetch()


def test_a_bulk_write_of_a_prefetched_key_is_read_back(
    backend: RocksDBKeyedStateBackend,
) -> None:
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    fill(backend, state, {"k": 1, "j": 2})
    read_all(backend, state, ["k", "j"])
    backend.prefetch(["k", "j"])
    assert state.prefetched is not None
    k_db_key = backend.key_part("k", "v") + state._suffix
    # a write batch that bypasses the state handle (restore, TTL clean-up, bulk paths)
    backend.write([(k_db_key, encode_value(10))], [])
    assert k_db_key not in state.prefetched  # read from the database from now on
    assert len(state.prefetched) == 1  # the other key stays prefetched
    assert read_all(backend, state, ["k", "j"]) == [10, 2]
    backend.write([], [k_db_key])
    assert read_all(backend, state, ["k", "j"]) == [None, 2]
    backend.end_prefetch()


def test_ttl_value_states_are_not_prefetched(backend: RocksDBKeyedStateBackend) -> None:
    descriptor = ValueStateDescriptor("ttl", None)
    descriptor.enable_time_to_live(StateTtlConfig.new_builder(60_000).build())
    state = backend.get_partitioned_state(descriptor)
    fill(backend, state, {"k": 5})
    read_all(backend, state, ["k"])
    backend.prefetch(["k"])
    assert backend._prefetched == []
    assert read_all(backend, state, ["k"]) == [5]
    backend.end_prefetch()


def test_a_key_that_cannot_be_encoded_fails_at_its_own_read(
    backend: RocksDBKeyedStateBackend,
) -> None:
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    fill(backend, state, {"ok": 1})
    read_all(backend, state, ["ok"])
    bad = object()  # no stable encoding for a key
    backend.prefetch(["ok", bad])  # does not raise
    assert read_all(backend, state, ["ok"]) == [1]
    backend.current_key = bad
    with pytest.raises((StateError, TypeError)):
        state.value()
    backend.end_prefetch()


def test_a_failing_multiget_is_a_clear_state_error(backend: RocksDBKeyedStateBackend) -> None:
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    read_all(backend, state, ["a"])
    backend.db.close()
    with pytest.raises(StateError, match="read state 'v'"):
        backend.prefetch(["a", "b"])


# -- through a job ---------------------------------------------------------------------


class PerKey(KeyedProcessFunction[Any, tuple[int, int], tuple[int, int, int]]):
    """Per key: a running sum, and a count that every 7th record of the key resets."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.sum = runtime_context.get_state(ValueStateDescriptor("sum", Types.LONG()))
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value: tuple[int, int], ctx: Any) -> Any:
        total = (self.sum.value() or 0) + value[1]
        self.sum.update(total)
        n = (self.count.value() or 0) + 1
        if n == 7:
            self.count.clear()
        else:
            self.count.update(n)
        yield value[0], total, n


def expected(records: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    sums: dict[int, int] = {}
    counts: dict[int, int] = {}
    out = []
    for key, value in records:
        sums[key] = sums.get(key, 0) + value
        n = counts.get(key, 0) + 1
        counts[key] = 0 if n == 7 else n
        out.append((key, sums[key], n))
    return out


@pytest.fixture
def prefetched_states(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many states each batch of a job prefetched, in order."""
    counts: list[int] = []
    original = RocksDBKeyedStateBackend.prefetch

    def counting(self: RocksDBKeyedStateBackend, keys: Any) -> None:
        original(self, keys)
        counts.append(len(self._prefetched))

    monkeypatch.setattr(RocksDBKeyedStateBackend, "prefetch", counting)
    return counts


def test_a_keyed_job_on_rocksdb_prefetches_and_computes_exactly(
    tmp_path: Path, prefetched_states: list[int]
) -> None:
    batches = prefetched_states
    # 50 keys, so every batch of 1,024 records repeats each key about 20 times
    records = [(i * 7919 % 50, i) for i in range(20_000)]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.set_state_backend(EmbeddedRocksDBStateBackend(local_dir=str(tmp_path / "rocksdb")))
    out: list[tuple[int, int, int]] = []
    env.from_collection(records).key_by(lambda r: r[0]).process(PerKey()).add_sink(out.append)
    env.execute("prefetch")
    assert out == expected(records)
    assert len(batches) >= 10
    assert batches[0] == 0  # nothing read before the first batch
    assert max(batches) == 2  # afterwards both states, every batch


class SumBoth(KeyedCoProcessFunction):
    """One running sum per key over both inputs; the second input subtracts."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.sum = runtime_context.get_state(ValueStateDescriptor("sum", Types.LONG()))

    def _add(self, key: int, delta: int) -> Any:
        total = (self.sum.value() or 0) + delta
        self.sum.update(total)
        yield key, total

    def process_element1(self, value: tuple[int, int], ctx: Any) -> Any:
        return self._add(value[0], value[1])

    def process_element2(self, value: tuple[int, int], ctx: Any) -> Any:
        return self._add(value[0], -value[1])


def test_a_keyed_co_process_job_on_rocksdb_prefetches_and_computes_exactly(
    tmp_path: Path, prefetched_states: list[int]
) -> None:
    prefetched = prefetched_states
    plus = [(i % 30, i) for i in range(6_000)]
    minus = [(i % 30, 1) for i in range(6_000)]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.set_state_backend(EmbeddedRocksDBStateBackend(local_dir=str(tmp_path / "rocksdb")))
    out: list[tuple[int, int]] = []
    (
        env.from_collection(plus)
        .connect(env.from_collection(minus))
        .key_by(lambda r: r[0], lambda r: r[0])
        .process(SumBoth())
        .add_sink(out.append)
    )
    env.execute("prefetch, co-process")
    final: dict[int, int] = {}
    for key, total in out:
        final[key] = total  # per key, the outputs arrive in processing order
    assert len(out) == 12_000
    assert final == {k: sum(i for i in range(k, 6_000, 30)) - 200 for k in range(30)}
    assert max(prefetched) == 1
