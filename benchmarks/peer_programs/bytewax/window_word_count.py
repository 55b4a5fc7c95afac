"""Bytewax: ``(word, ts)`` -> ``count_window`` over 10 s tumbling event-time windows
aligned to the epoch -> ``(word, (window id, count))``.

Bytewax's ``EventClock`` advances its watermark with the system clock between items, so
with ``wait_for_system_duration=0`` a record that follows a pause (a GC, a batch
boundary) longer than its 1 ms of event time is late and dropped. The clock waits an
hour instead: no record is late, and windows close as the input ends (as Flinklet's do
at the final watermark when periodic watermarks lag).
"""

from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from benchmarks.inputs import words
from benchmarks.peer_programs.bytewax_common import BATCH, execute
from benchmarks.peer_programs.timing import main
from bytewax.operators.windowing import EventClock, TumblingWindower, count_window
from bytewax.testing import TestingSource

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW = timedelta(seconds=10)


def event_time(record: tuple[str, int]) -> datetime:
    return EPOCH + timedelta(milliseconds=record[1])


def word_of(record: tuple[str, int]) -> str:
    return record[0]


def weighted(item: tuple[str, tuple[int, int]]) -> int:
    window_id, count = item[1]
    return count * ((window_id + 1) * 10)  # window end in seconds


def run(records: list[tuple[str, int]]) -> tuple[int, int]:
    def build(flow, sink):  # type: ignore[no-untyped-def]
        stream = op.input("words", flow, TestingSource(records, BATCH))
        clock = EventClock(event_time, wait_for_system_duration=timedelta(hours=1))
        windower = TumblingWindower(length=WINDOW, align_to=EPOCH)
        counts = count_window("count", stream, clock, windower, word_of)
        op.output("tally", counts.down, sink(weighted))

    return execute(build)


main(words, run)
