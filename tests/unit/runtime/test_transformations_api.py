"""DataStream transformations with value assertions (local engine, all subtasks in-process)."""

from __future__ import annotations

from typing import Any

import pytest

from flinklet.common.typeinfo import Types
from flinklet.datastream import (
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    FilterFunction,
    FlatMapFunction,
    KeyedCoProcessFunction,
    KeySelector,
    MapFunction,
    ReduceFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from flinklet.datastream.functions import Partitioner


def env_p(parallelism: int = 1) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


def collect(ds: Any) -> list[Any]:
    with ds.execute_and_collect() as results:
        return list(results)


def test_map_with_callable_and_output_type() -> None:
    env = env_p()
    ds = env.from_collection([1, 2, 3]).map(lambda x: x * 10, output_type=Types.INT())
    assert collect(ds) == [10, 20, 30]


def test_map_function_object_open_close_and_runtime_context() -> None:
    events: list[str] = []

    class AddIndex(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.index = runtime_context.get_index_of_this_subtask()
            self.n = runtime_context.get_number_of_parallel_subtasks()
            events.append("open")

        def map(self, value: int) -> tuple[int, int, int]:
            return value, self.index, self.n

        def close(self) -> None:
            events.append("close")

    env = env_p(1)
    out = collect(env.from_collection([5, 6]).map(AddIndex()))
    assert out == [(5, 0, 1), (6, 0, 1)]
    assert events == ["open", "close"]


def test_flat_map_callable_and_object() -> None:
    class Split(FlatMapFunction):
        def flat_map(self, value: str) -> Any:
            yield from value.split()

    env = env_p()
    ds = env.from_collection(["a b", "c"]).flat_map(Split()).flat_map(lambda w: [w, w.upper()])
    assert collect(ds) == ["a", "A", "b", "B", "c", "C"]


def test_filter_callable_and_object() -> None:
    class Even(FilterFunction):
        def filter(self, value: int) -> bool:
            return value % 2 == 0

    env = env_p()
    ds = env.from_collection(range(10)).filter(Even()).filter(lambda x: x > 2)
    assert collect(ds) == [4, 6, 8]


def test_union_of_three_streams() -> None:
    env = env_p()
    a = env.from_collection([1, 2])
    b = env.from_collection([3])
    c = env.from_collection([4, 5])
    assert sorted(collect(a.union(b, c))) == [1, 2, 3, 4, 5]


def test_key_by_reduce_emits_running_value_per_key() -> None:
    class Add(ReduceFunction):
        def reduce(self, a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
            return a[0], a[1] + b[1]

    env = env_p(2)
    data = [("a", 1), ("b", 10), ("a", 2), ("b", 20), ("a", 3)]
    out = collect(env.from_collection(data).key_by(lambda r: r[0]).reduce(Add()))
    assert [r for r in out if r[0] == "a"] == [("a", 1), ("a", 3), ("a", 6)]
    assert [r for r in out if r[0] == "b"] == [("b", 10), ("b", 30)]


def test_key_selector_object() -> None:
    class First(KeySelector):
        def get_key(self, value: tuple[str, int]) -> str:
            return value[0]

    env = env_p(3)
    out = collect(env.from_collection([("x", 1), ("x", 2)]).key_by(First()).sum(1))
    assert out == [("x", 1), ("x", 3)]


def test_sum_min_max_keep_first_record_fields() -> None:
    data = [("k", 5, "first"), ("k", 3, "second"), ("k", 9, "third")]
    env = env_p()
    s = env.from_collection(data).key_by(lambda r: r[0])
    assert collect(s.sum(1)) == [("k", 5, "first"), ("k", 8, "first"), ("k", 17, "first")]
    s = env.from_collection(data).key_by(lambda r: r[0])
    assert collect(s.min(1)) == [("k", 5, "first"), ("k", 3, "first"), ("k", 3, "first")]
    s = env.from_collection(data).key_by(lambda r: r[0])
    assert collect(s.max(1)) == [("k", 5, "first"), ("k", 5, "first"), ("k", 9, "first")]


def test_min_by_max_by_return_whole_records() -> None:
    data = [("k", 5, "first"), ("k", 3, "second"), ("k", 9, "third"), ("k", 3, "fourth")]
    env = env_p()
    out = collect(env.from_collection(data).key_by(lambda r: r[0]).min_by(1))
    assert out == [data[0], data[1], data[1], data[1]]  # ties keep the first
    out = collect(env.from_collection(data).key_by(lambda r: r[0]).max_by(1))
    assert out == [data[0], data[0], data[2], data[2]]


def test_sum_of_plain_numbers_and_row_fields() -> None:
    from flinklet.common.types import Row

    env = env_p()
    out = collect(env.from_collection([1, 2, 3]).key_by(lambda x: "all").sum())
    assert out == [1, 3, 6]
    rows = [Row(name="a", n=1), Row(name="a", n=4)]
    out = collect(env.from_collection(rows).key_by(lambda r: r.name).sum("n"))
    assert [r.n for r in out] == [1, 5]


def test_connected_streams_map_and_flat_map() -> None:
    class Tag(CoMapFunction):
        def map1(self, value: int) -> str:
            return f"L{value}"

        def map2(self, value: str) -> str:
            return f"R{value}"

    class Both(CoFlatMapFunction):
        def flat_map1(self, value: int) -> Any:
            yield value
            yield value

        def flat_map2(self, value: str) -> Any:
            yield value

    env = env_p()
    left, right = env.from_collection([1, 2]), env.from_collection(["x"])
    assert sorted(collect(left.connect(right).map(Tag()))) == ["L1", "L2", "Rx"]
    left, right = env.from_collection([1]), env.from_collection(["y"])
    assert sorted(collect(left.connect(right).flat_map(Both())), key=str) == [1, 1, "y"]


def test_co_process_function_non_keyed() -> None:
    class Merge(CoProcessFunction):
        def process_element1(self, value: int, ctx: Any) -> Any:
            yield ("one", value)

        def process_element2(self, value: int, ctx: Any) -> Any:
            yield ("two", value)

    env = env_p()
    out = collect(env.from_collection([1]).connect(env.from_collection([2])).process(Merge()))
    assert sorted(out) == [("one", 1), ("two", 2)]


def test_connected_streams_key_by_shares_keyed_state() -> None:
    from flinklet.datastream.state import ValueStateDescriptor

    class CountBoth(KeyedCoProcessFunction):
        """Counts elements per key over both inputs in one keyed state."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.count = runtime_context.get_state(ValueStateDescriptor("n", Types.INT()))

        def _bump(self, ctx: Any) -> Any:
            n = (self.count.value() or 0) + 1
            self.count.update(n)
            yield ctx.get_current_key(), n

        def process_element1(self, value: tuple[int, str], ctx: Any) -> Any:
            return self._bump(ctx)

        def process_element2(self, value: tuple[int, int], ctx: Any) -> Any:
            return self._bump(ctx)

    env = env_p(2)
    names = env.from_collection([(1, "one"), (2, "two")])
    amounts = env.from_collection([(1, 100), (2, 200), (1, 300)])
    out = collect(
        names.connect(amounts).key_by(lambda r: r[0], lambda r: r[0]).process(CountBoth())
    )
    # whatever the interleaving of the inputs, counts per key run 1..n over both inputs
    assert sorted(n for k, n in out if k == 1) == [1, 2, 3]
    assert sorted(n for k, n in out if k == 2) == [1, 2]


def test_partition_custom_routes_by_user_partitioner() -> None:
    class Parity(Partitioner):
        def partition(self, key: int, num_partitions: int) -> int:
            return key % num_partitions

    class WhereAmI(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.idx = runtime_context.get_index_of_this_subtask()

        def map(self, value: int) -> tuple[int, int]:
            return value, self.idx

    env = env_p(2)
    ds = env.from_collection(range(6)).partition_custom(Parity(), lambda x: x).map(WhereAmI())
    assert sorted(collect(ds)) == [(0, 0), (1, 1), (2, 0), (3, 1), (4, 0), (5, 1)]


@pytest.mark.parametrize("how", ["rebalance", "rescale", "shuffle", "global_", "broadcast"])
def test_physical_partitioning(how: str) -> None:
    class WhereAmI(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.idx = runtime_context.get_index_of_this_subtask()

        def map(self, value: int) -> tuple[int, int]:
            return value, self.idx

    env = env_p(3)
    src = env.from_collection(range(30))  # parallelism 1
    ds = getattr(src, how)().map(WhereAmI())
    out = collect(ds)
    subtasks = {idx for _v, idx in out}
    values = sorted(v for v, _i in out)
    if how == "broadcast":
        assert values == sorted(list(range(30)) * 3)
        assert subtasks == {0, 1, 2}
    elif how == "global_":
        assert values == list(range(30))
        assert subtasks == {0}
    else:
        assert values == list(range(30))
        if how == "rebalance":
            counts = [sum(1 for _v, i in out if i == s) for s in range(3)]
            assert counts == [10, 10, 10]
        if how == "rescale":  # one upstream subtask feeds all three downstream ones
            assert subtasks == {0, 1, 2}


def test_forward_keeps_records_on_the_same_subtask() -> None:
    class WhereAmI(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.idx = runtime_context.get_index_of_this_subtask()

        def map(self, value: Any) -> Any:
            return value[0], value[1], self.idx

    class Mark(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.idx = runtime_context.get_index_of_this_subtask()

        def map(self, value: int) -> tuple[int, int]:
            return value, self.idx

    env = env_p(2)
    ds = env.from_collection(range(8)).rebalance().map(Mark()).forward().map(WhereAmI())
    out = collect(ds.disable_chaining())
    assert all(first == second for _v, first, second in out)
    assert sorted(v for v, _a, _b in out) == list(range(8))


def test_names_uids_and_parallelism_show_in_the_plan() -> None:
    import json

    env = env_p(2)
    ds = env.from_collection([1]).map(lambda x: x).name("double").uid("double-uid")
    ds.set_parallelism(3).print().name("out")
    plan = json.loads(env.get_execution_plan())
    contents = [n["contents"] for n in plan["nodes"]]
    assert "double" in contents[1]
    assert [n["parallelism"] for n in plan["nodes"]][:2] == [1, 3]


def test_set_max_parallelism_changes_key_groups() -> None:
    env = env_p(2)
    env.set_max_parallelism(4)
    graph = env.from_collection([("a", 1)]).key_by(lambda r: r[0]).sum(1)
    graph.print()
    jg = env.get_job_graph()
    assert jg.vertices[-1].max_parallelism == 4


def test_print_prefixes_subtask_when_parallel(capsys: pytest.CaptureFixture[str]) -> None:
    env = env_p(2)
    env.from_collection([1, 2, 3]).rebalance().map(lambda x: x).print()
    env.execute("print")
    lines = capsys.readouterr().out.strip().splitlines()
    # rebalance from one upstream subtask round-robins 1 -> subtask 0, 2 -> 1, 3 -> 0
    assert sorted(lines) == ["1> 1", "1> 3", "2> 2"]


def test_print_without_prefix_at_parallelism_one(capsys: pytest.CaptureFixture[str]) -> None:
    env = env_p(1)
    env.from_collection(["x", "y"]).print()
    env.execute()
    assert capsys.readouterr().out == "x\ny\n"


def test_add_sink_with_sink_function_object_and_callable() -> None:
    from flinklet.datastream import SinkFunction

    received: list[Any] = []

    class ToList(SinkFunction):
        def invoke(self, value: Any, context: Any) -> None:
            received.append(value)

    env = env_p()
    env.from_collection([1, 2]).add_sink(ToList())
    env.from_collection([3]).add_sink(lambda v: received.append(v))
    env.execute()
    assert sorted(received) == [1, 2, 3]
