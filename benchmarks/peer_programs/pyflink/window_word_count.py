"""PyFlink: ``(word, ts)`` -> ``map((word, 1))`` -> ``key_by`` -> 10 s tumbling event-time
windows -> ``reduce`` with a window function emitting ``(word, window end, count)``."""

from collections.abc import Iterable
from typing import Any

from benchmarks.inputs import words
from benchmarks.peer_programs.pyflink_common import execute
from benchmarks.peer_programs.timing import main
from pyflink.common import Time, Types
from pyflink.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from pyflink.datastream.functions import WindowFunction
from pyflink.datastream.window import TumblingEventTimeWindows

WORD = Types.TUPLE([Types.STRING(), Types.LONG()])
WORD_ONE = Types.TUPLE([Types.STRING(), Types.LONG()])
RESULT = Types.TUPLE([Types.STRING(), Types.LONG(), Types.LONG()])


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return value[1]


class EmitWordCount(WindowFunction):
    def apply(self, key: str, window: Any, inputs: Iterable[Any]) -> Iterable[Any]:
        for word, count in inputs:
            yield (word, window.end, count)


def one(record: tuple[str, int]) -> tuple[str, int]:
    return (record[0], 1)


def word_of(record: tuple[str, int]) -> str:
    return record[0]


def add_counts(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def weighted(result: tuple[str, int, int]) -> int:
    return result[2] * (result[1] // 1000)


def run(records: list[tuple[str, int]]) -> tuple[int, int]:
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(EventTime())
    return execute(
        lambda env, tally: (
            env.from_collection(records, type_info=WORD)
            .assign_timestamps_and_watermarks(strategy)
            .map(one, output_type=WORD_ONE)
            .key_by(word_of, key_type=Types.STRING())
            .window(TumblingEventTimeWindows.of(Time.milliseconds(10_000)))
            .reduce(add_counts, window_function=EmitWordCount(), output_type=RESULT)
            .filter(tally(weighted))
            .print()
        )
    )


main(words, run)
