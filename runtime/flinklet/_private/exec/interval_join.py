"""The interval join operator: Flink's ``IntervalJoinOperator``.

Both inputs are keyed the same way. Each element is buffered in keyed ``MapState``
(timestamp -> elements) of its side and joined with the buffered elements of the other
side whose timestamps lie in ``[ts + lower, ts + upper]`` (seen from the left side).
A cleanup timer per element removes it once the watermark guarantees that no element of
the other side can still join it. Elements older than the watermark are late: they are
dropped (or sent to a late-data side output). Pairs are emitted with the timestamp
``max(left timestamp, right timestamp)``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

from flinklet._private.exec.operators import (
    Output,
    ResultCollector,
    Stamps,
    TwoInputOperator,
    Values,
    copy_function,
    user_method,
)
from flinklet._private.exec.process import KeyedMixin
from flinklet._private.network.elements import MIN_WATERMARK
from flinklet.datastream.functions import ProcessJoinFunction
from flinklet.datastream.output_tag import OutputTag
from flinklet.datastream.state import MapStateDescriptor
from flinklet.errors import MissingTimestampError

LEFT_BUFFER = "LEFT_BUFFER"
RIGHT_BUFFER = "RIGHT_BUFFER"
CLEANUP_LEFT = "CLEANUP_LEFT"
CLEANUP_RIGHT = "CLEANUP_RIGHT"


class _JoinContext(ProcessJoinFunction.Context):
    __slots__ = ("left_ts", "result_ts", "right_ts")

    def __init__(self) -> None:
        self.left_ts = 0
        self.right_ts = 0
        self.result_ts = 0

    def get_left_timestamp(self) -> int:
        return self.left_ts

    def get_right_timestamp(self) -> int:
        return self.right_ts

    def timestamp(self) -> int:
        return self.result_ts


class IntervalJoinOperator(KeyedMixin, TwoInputOperator):
    """Joins left element ``l`` with right element ``r`` of the same key when
    ``l.ts + lower <= r.ts <= l.ts + upper`` (bounds made inclusive at construction)."""

    def __init__(
        self,
        fn: Any,
        key_selector1: Callable[[Any], Any],
        key_selector2: Callable[[Any], Any],
        lower: int,
        upper: int,
        lower_exclusive: bool = False,
        upper_exclusive: bool = False,
        left_late_tag: OutputTag | None = None,
        right_late_tag: OutputTag | None = None,
    ) -> None:
        self.user_function = copy_function(fn)
        self._process = user_method(
            self.user_function, "process_element", "process", "ProcessJoinFunction"
        )
        self._ks = (key_selector1, key_selector2)
        self.lower = lower + 1 if lower_exclusive else lower
        self.upper = upper - 1 if upper_exclusive else upper
        self._late_tags = (left_late_tag, right_late_tag)

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._setup_keyed()
        backend = self.backend
        self._left: Any = backend.get_partitioned_state(MapStateDescriptor(LEFT_BUFFER, None, None))
        self._right: Any = backend.get_partitioned_state(
            MapStateDescriptor(RIGHT_BUFFER, None, None)
        )
        self._ctx = _JoinContext()

    def process_batch1(self, values: Values, timestamps: Stamps) -> None:
        self._join(values, timestamps, True)

    def process_batch2(self, values: Values, timestamps: Stamps) -> None:
        self._join(values, timestamps, False)

    def _join(self, values: Values, timestamps: Stamps, is_left: bool) -> None:
        if is_left:
            ours, theirs = self._left, self._right
            rel_lower, rel_upper, namespace = self.lower, self.upper, CLEANUP_LEFT
        else:
            ours, theirs = self._right, self._left
            rel_lower, rel_upper, namespace = -self.upper, -self.lower, CLEANUP_RIGHT
        ks = self._ks[0 if is_left else 1]
        late_tag = self._late_tags[0 if is_left else 1]
        set_key, process, ctx = self.backend.set_current_key, self._process, self._ctx
        register = self.timers.register_event_time_timer
        watermark = self.current_watermark
        res = ResultCollector(True)
        stamps = repeat(None) if timestamps is None else timestamps
        for value, ts in zip(values, stamps, strict=False):
            if ts is None:
                raise MissingTimestampError(
                    f"'{self.name}': elements of an interval join need timestamps. Call "
                    "assign_timestamps_and_watermarks(WatermarkStrategy....with_timestamp_"
                    "assigner(...)) on both inputs (or read them with from_source and a "
                    "WatermarkStrategy that has a timestamp assigner)"
                )
            set_key(ks(value))
            if watermark != MIN_WATERMARK and ts < watermark:
                if late_tag is not None:
                    res.add(((late_tag, value),), ts)
                continue
            bucket = ours.get(ts)
            if bucket is None:
                ours.put(ts, [value])
            else:
                bucket.append(value)
                ours.put(ts, bucket)
            low, high = ts + rel_lower, ts + rel_upper
            for other_ts, others in theirs.items():
                if other_ts < low or other_ts > high:
                    continue
                result_ts = ts if ts >= other_ts else other_ts
                ctx.result_ts = result_ts
                if is_left:
                    ctx.left_ts, ctx.right_ts = ts, other_ts
                    for other in others:
                        res.add(process(value, other, ctx), result_ts)
                else:
                    ctx.left_ts, ctx.right_ts = other_ts, ts
                    for other in others:
                        res.add(process(other, value, ctx), result_ts)
            register(namespace, ts + rel_upper if rel_upper > 0 else ts)
        res.emit(self.output)

    def process_watermark(self, watermark: int) -> None:
        self.timers.advance_watermark(watermark)
        super().process_watermark(watermark)

    def _fire_timer(self, ts: int, key: Any, namespace: Any, event_time: bool) -> None:
        if namespace == CLEANUP_LEFT:
            self._left.remove(ts if self.upper <= 0 else ts - self.upper)
        else:
            self._right.remove(ts + self.lower if self.lower <= 0 else ts)
