"""State TTL on the heap backend, driven by a fake processing-time clock."""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import pytest

from flinklet._private.state.backend import VOID_NAMESPACE, StateKind, StateMetaInfo
from flinklet._private.state.heap import HeapKeyedStateBackend, HeapValueState
from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.layout import decode_state_key
from flinklet._private.state.serializers import deserialize
from flinklet._private.state.ttl import SWEEP_BATCH, TtlState, TtlValueState
from flinklet.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from flinklet.errors import ApiUsageError, ConfigurationError, StateError

TTL = 100
D = TypeVar("D", bound=StateDescriptor)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class Seconds:
    """Duck-typed ``Time``: anything with ``to_milliseconds()``."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def to_milliseconds(self) -> int:
        return self.seconds * 1000


class Count:
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator

    def merge(self, a: int, b: int) -> int:
        return a + b


def builder() -> StateTtlConfig.Builder:
    return StateTtlConfig.new_builder(TTL).disable_cleanup_in_background()


def with_ttl(descriptor: D, config: StateTtlConfig) -> D:
    descriptor.enable_time_to_live(config)
    return descriptor


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> HeapKeyedStateBackend:
    result = HeapKeyedStateBackend(128, KeyGroupRange(0, 127), time_provider=clock)
    result.current_key = "k"
    return result


# -- config ---------------------------------------------------------------------------------


def test_builder_defaults_and_getters() -> None:
    config = StateTtlConfig.new_builder(Seconds(5)).build()
    assert config.get_ttl().seconds == 5
    assert config.ttl_milliseconds == 5000
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnCreateAndWrite
    assert config.get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    assert (
        config.get_ttl_time_characteristic() is StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
    )
    assert config.is_enabled()
    strategies = config.get_cleanup_strategies()
    assert strategies.is_cleanup_in_background()
    assert not strategies.in_full_snapshot()
    incremental = strategies.get_incremental_cleanup_strategy()
    assert incremental is not None and incremental.get_cleanup_size() == 5
    assert strategies.get_rocksdb_compact_filter_cleanup_strategy() is None


def test_builder_accepts_time_and_duration() -> None:
    from flinklet.common.time import Duration, Time

    assert StateTtlConfig.new_builder(Time.minutes(5)).build().ttl_milliseconds == 300_000
    assert StateTtlConfig.new_builder(Duration.of_seconds(3)).build().ttl_milliseconds == 3_000
    assert StateTtlConfig.new_builder(Time.hours(1)).build().get_ttl() == Time.hours(1)


def test_builder_setters() -> None:
    config = (
        StateTtlConfig.new_builder(datetime.timedelta(minutes=1))
        .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
        .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
        .set_ttl_time_characteristic(StateTtlConfig.TtlTimeCharacteristic.ProcessingTime)
        .cleanup_full_snapshot()
        .cleanup_incrementally(10, True)
        .cleanup_in_rocksdb_compact_filter(1000)
        .disable_cleanup_in_background()
        .build()
    )
    assert config.ttl_milliseconds == 60_000
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite
    assert (
        config.get_state_visibility() is StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
    )
    strategies = config.get_cleanup_strategies()
    assert not strategies.is_cleanup_in_background()
    assert strategies.in_full_snapshot()
    incremental = strategies.get_incremental_cleanup_strategy()
    assert incremental is not None
    assert incremental.get_cleanup_size() == 10 and incremental.run_cleanup_for_every_record()
    compact = strategies.get_rocksdb_compact_filter_cleanup_strategy()
    assert compact is not None and compact.get_query_time_after_num_entries() == 1000
    shortcuts = (
        StateTtlConfig.new_builder(1)
        .update_ttl_on_read_and_write()
        .return_expired_if_not_cleaned_up()
        .build()
    )
    assert shortcuts.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite
    never = StateTtlConfig.new_builder(1).update_ttl_on_create_and_write().never_return_expired()
    assert never.build().get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    no_background = StateTtlConfig.new_builder(1).disable_cleanup_in_background().build()
    assert no_background.get_cleanup_strategies().get_incremental_cleanup_strategy() is None


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (0, ConfigurationError),
        (-5, ConfigurationError),
        ("10s", ApiUsageError),
        (True, ApiUsageError),
    ],
)
def test_invalid_ttl_is_rejected(ttl: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="TTL"):
        StateTtlConfig.new_builder(ttl)


def test_invalid_cleanup_size_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="cleanup size must be positive"):
        StateTtlConfig.new_builder(1).cleanup_incrementally(0, False)


def test_enable_time_to_live_checks_its_argument() -> None:
    descriptor = ValueStateDescriptor("v", None)
    with pytest.raises(StateError, match="takes a StateTtlConfig"):
        descriptor.enable_time_to_live(100)  # type: ignore[arg-type]
    disabled = StateTtlConfig.new_builder(1).set_update_type(StateTtlConfig.UpdateType.Disabled)
    with pytest.raises(StateError, match="cannot be Disabled"):
        descriptor.enable_time_to_live(disabled.build())
    assert descriptor.ttl_config is None


def test_ttl_and_plain_states_are_different_classes(backend: HeapKeyedStateBackend) -> None:
    plain = backend.get_partitioned_state(ValueStateDescriptor("plain", None))
    timed = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("timed", None), builder().build())
    )
    assert type(plain) is HeapValueState and not isinstance(plain, TtlState)
    assert type(timed) is TtlValueState


# -- expiry -----------------------------------------------------------------------------


def test_value_expires_after_ttl(backend: HeapKeyedStateBackend, clock: FakeClock) -> None:
    state = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), builder().build())
    )
    state.update("x")
    clock.now = TTL - 1
    assert state.value() == "x"
    clock.now = TTL
    assert state.value() is None
    assert backend.keys("v") == []  # removed on read


def test_on_create_and_write_does_not_extend_on_read(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    state = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), builder().build())
    )
    state.update(1)
    clock.now = 90
    assert state.value() == 1
    clock.now = 150
    assert state.value() is None
    state.update(2)
    clock.now = 249
    assert state.value() == 2


def test_on_read_and_write_extends_on_read(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().update_ttl_on_read_and_write().build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    state.update(1)
    for now in (90, 180, 270):
        clock.now = now
        assert state.value() == 1
    clock.now = 370
    assert state.value() is None


def test_return_expired_if_not_cleaned_up(backend: HeapKeyedStateBackend, clock: FakeClock) -> None:
    config = builder().return_expired_if_not_cleaned_up().build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    state.update("stale")
    clock.now = 500
    assert state.value() == "stale"  # still there, so returned once ...
    assert state.value() is None  # ... and cleaned up by that read


def test_list_elements_expire_individually(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    state = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("l", None), builder().build())
    )
    assert state.get() == []
    state.add("old")
    clock.now = 50
    state.add_all(["new1", "new2"])
    assert state.get() == ["old", "new1", "new2"]
    clock.now = 120
    assert state.get() == ["new1", "new2"]
    clock.now = 150
    assert state.get() == []
    assert backend.keys("l") == []
    state.update(["a"])
    with pytest.raises(StateError, match="cannot add None"):
        state.add(None)
    clock.now = 200
    state.update([])
    assert state.get() == []


def test_map_entries_expire_individually(backend: HeapKeyedStateBackend, clock: FakeClock) -> None:
    state = backend.get_partitioned_state(
        with_ttl(MapStateDescriptor("m", None, None), builder().build())
    )
    state.put("a", 1)
    clock.now = 60
    state.put_all({"b": 2})
    assert sorted(state.items()) == [("a", 1), ("b", 2)]
    clock.now = 100
    assert state.get("a") is None
    assert not state.contains("a")
    assert state.contains("b")
    assert state.keys() == ["b"] and state.values() == [2]
    assert not state.is_empty()
    clock.now = 160
    assert state.is_empty()
    assert backend.keys("m") == []
    state.put("c", 3)
    state.remove("c")
    assert state.get("c") is None


def test_map_entry_read_refreshes_with_on_read_and_write(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().update_ttl_on_read_and_write().build()
    state = backend.get_partitioned_state(with_ttl(MapStateDescriptor("m", None, None), config))
    state.put("a", 1)
    state.put("b", 2)
    clock.now = 90
    assert state.get("a") == 1
    clock.now = 150
    assert state.items() == [("a", 1)]


def test_reducing_and_aggregating_restart_after_expiry(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    total = backend.get_partitioned_state(
        with_ttl(ReducingStateDescriptor("sum", lambda a, b: a + b, None), builder().build())
    )
    count = backend.get_partitioned_state(
        with_ttl(AggregatingStateDescriptor("count", Count(), None), builder().build())
    )
    for value in (1, 2):
        total.add(value)
        count.add(value)
    assert total.get() == 3 and count.get() == 2
    clock.now = 100
    assert total.get() is None and count.get() is None
    total.add(10)
    count.add(10)
    clock.now = 150
    total.add(5)
    count.add(5)
    assert total.get() == 15 and count.get() == 2


def test_merging_ttl_namespaces_drops_expired_content(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    state: Any = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("l", None), builder().build())
    )
    state.set_current_namespace("w1")
    state.add("expired")
    clock.now = 60
    state.set_current_namespace("w2")
    state.add("alive")
    clock.now = 120
    state.merge_namespaces("w3", ["w1", "w2"])
    state.set_current_namespace("w3")
    assert state.get() == ["alive"]


# -- cleanup ------------------------------------------------------------------------------


def accesses_for_one_sweep(cleanup_size: int) -> int:
    return -(-SWEEP_BATCH // cleanup_size)


def test_incremental_cleanup_removes_expired_entries_of_other_keys(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().cleanup_incrementally(3, False).build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    for i in range(10):
        backend.current_key = i
        state.update(i)
    clock.now = 150
    backend.current_key = "fresh"
    state.update("alive")
    clock.now = 200
    backend.current_key = "reader"
    for _ in range(accesses_for_one_sweep(3)):
        state.value()
    assert backend.keys("v") == ["fresh"]


def test_incremental_cleanup_checks_cleanup_size_entries_per_access_on_average(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().cleanup_incrementally(1, False).build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    for i in range(3 * SWEEP_BATCH):
        backend.current_key = i
        state.update(i)
    clock.now = 200
    backend.current_key = "reader"
    remaining = []
    for _ in range(3):
        for _ in range(SWEEP_BATCH):
            state.value()
        remaining.append(len(backend.keys("v")))
    assert remaining[0] >= SWEEP_BATCH  # two sweeps' worth of entries are left, roughly
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == 0


def test_incremental_cleanup_pauses_until_the_oldest_entry_can_expire(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().cleanup_incrementally(SWEEP_BATCH, False).build()
    state: Any = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    state.update("k")  # written at 0, so nothing can expire before 100
    clock.now = 10
    state.value()  # a full round: the state learns its oldest timestamp
    assert state._quiet_until == TTL
    clock.now = 99
    state.value()
    assert backend.keys("v") == ["k"]
    backend.current_key = "other"
    clock.now = 100
    state.value()
    assert backend.keys("v") == []


def test_incremental_cleanup_prunes_list_elements(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().cleanup_incrementally(SWEEP_BATCH, False).build()
    state = backend.get_partitioned_state(with_ttl(ListStateDescriptor("l", None), config))
    backend.current_key = "a"
    state.add("old")
    clock.now = 50
    state.add("new")
    clock.now = 120
    backend.current_key = "b"
    state.get()
    assert [element for element, _ts in backend._tables["l"][VOID_NAMESPACE]["a"]] == ["new"]


def test_incremental_cleanup_prunes_map_entries(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = builder().cleanup_incrementally(SWEEP_BATCH, False).build()
    state = backend.get_partitioned_state(with_ttl(MapStateDescriptor("m", None, None), config))
    backend.current_key = "a"
    state.put("old", 1)
    clock.now = 50
    state.put("new", 2)
    clock.now = 120
    backend.current_key = "b"
    state.is_empty()
    assert list(backend._tables["m"][VOID_NAMESPACE]["a"]) == ["new"]


def test_default_background_cleanup_is_incremental(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    config = StateTtlConfig.new_builder(TTL).build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    for i in range(5):
        backend.current_key = i
        state.update(i)
    clock.now = 200
    backend.current_key = "reader"
    for _ in range(accesses_for_one_sweep(5)):
        state.value()
    assert backend.keys("v") == []


def test_without_background_cleanup_expired_entries_stay_until_read(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    state = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), builder().build())
    )
    for i in range(5):
        backend.current_key = i
        state.update(i)
    clock.now = 200
    backend.current_key = "reader"
    for _ in range(2 * SWEEP_BATCH):
        state.value()
    assert len(backend.keys("v")) == 5


def test_full_snapshot_cleanup_leaves_expired_entries_out(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    cleaned = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("cleaned", None), builder().cleanup_full_snapshot().build())
    )
    kept = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("kept", None), builder().build())
    )
    for state in (cleaned, kept):
        state.add("old")
    clock.now = 60
    for state in (cleaned, kept):
        state.add("new")
    backend.current_key = "other"
    cleaned.add("expired later")
    kept.add("expired later")
    clock.now = 120
    snapshot = backend.snapshot()
    assert snapshot.states["cleaned"] == StateMetaInfo(StateKind.LIST, TTL)
    values: dict[str, list[Any]] = {"cleaned": [], "kept": []}
    for group in snapshot.entries.values():
        for layout_key, value_bytes in group:
            name = decode_state_key(layout_key)[3]
            values[name].extend(element for element, _ts in deserialize(value_bytes))
    assert sorted(values["cleaned"]) == ["expired later", "new"]
    assert sorted(values["kept"]) == ["expired later", "new", "old"]
    # the live state is not changed by the snapshot
    assert len(backend._tables["cleaned"][VOID_NAMESPACE]["k"]) == 2


# -- restore across TTL settings ------------------------------------------------------------


def test_ttl_state_restores_with_its_timestamps(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    descriptor = with_ttl(ValueStateDescriptor("v", None), builder().build())
    backend.get_partitioned_state(descriptor).update("x")
    snapshot = backend.snapshot()
    restored = HeapKeyedStateBackend(128, KeyGroupRange(0, 127), time_provider=clock)
    restored.restore([snapshot])
    state = restored.get_partitioned_state(descriptor)
    restored.current_key = "k"
    clock.now = 99
    assert state.value() == "x"
    clock.now = 100
    assert state.value() is None


def test_turning_ttl_on_or_off_converts_restored_values(
    backend: HeapKeyedStateBackend, clock: FakeClock
) -> None:
    plain_list = backend.get_partitioned_state(ListStateDescriptor("l", None))
    plain_map = backend.get_partitioned_state(MapStateDescriptor("m", None, None))
    plain_list.add("a")
    plain_map.put("u", 1)
    timed = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), builder().build())
    )
    timed.update("t")
    snapshot = backend.snapshot()

    # registered before restore
    first = HeapKeyedStateBackend(128, KeyGroupRange(0, 127), time_provider=clock)
    timed_list = first.get_partitioned_state(
        with_ttl(ListStateDescriptor("l", None), builder().build())
    )
    first.restore([snapshot])
    # registered after restore
    timed_map = first.get_partitioned_state(
        with_ttl(MapStateDescriptor("m", None, None), builder().build())
    )
    plain_value = first.get_partitioned_state(ValueStateDescriptor("v", None))
    first.current_key = "k"
    clock.now = 50
    assert timed_list.get() == ["a"]
    assert timed_map.get("u") == 1
    assert plain_value.value() == "t"
    clock.now = 500
    assert plain_value.value() == "t"
    assert timed_list.get() == [] and timed_map.get("u") is None  # restored at now=0
