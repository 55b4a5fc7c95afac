"""The interval join operator: bounds (inclusive and exclusive), timestamps of results,
late elements and buffer cleanup."""

from __future__ import annotations

from typing import Any

import pytest

from flinklet._private.exec.interval_join import IntervalJoinOperator
from flinklet.datastream.functions import ProcessJoinFunction
from flinklet.datastream.output_tag import OutputTag
from flinklet.errors import MissingTimestampError


def _key(element: tuple[str, Any]) -> str:
    return element[0]


class _Pairs(ProcessJoinFunction[Any, Any, Any]):
    def process_element(self, left: Any, right: Any, ctx: Any) -> Any:
        yield (left[1], right[1], ctx.get_left_timestamp(), ctx.get_right_timestamp())


def join_op(lower: int, upper: int, **options: Any) -> IntervalJoinOperator:
    return IntervalJoinOperator(_Pairs(), _key, _key, lower, upper, **options)


def _rights(h: Any, *stamps: int, key: str = "k") -> None:
    for ts in stamps:
        h.right((key, f"r{ts}"), ts)


def test_inclusive_bounds_join_rights_within_lower_and_upper(harness: Any) -> None:
    h = harness(join_op(-2, 3))
    _rights(h, 7, 8, 13, 14)
    h.left(("k", "l10"), 10)
    # left at 10 joins rights at 10 - 2 = 8 up to 10 + 3 = 13, both ends included;
    # each pair is stamped with the larger timestamp
    assert sorted(h.take()) == [
        (("l10", "r13", 10, 13), 13),
        (("l10", "r8", 10, 8), 10),
    ]


def test_lower_bound_exclusive(harness: Any) -> None:
    h = harness(join_op(-2, 3, lower_exclusive=True))
    _rights(h, 7, 8, 13, 14)
    h.left(("k", "l10"), 10)
    assert [v for v, _ in h.take()] == [("l10", "r13", 10, 13)]  # (8, 13]


def test_upper_bound_exclusive(harness: Any) -> None:
    h = harness(join_op(-2, 3, upper_exclusive=True))
    _rights(h, 7, 8, 13, 14)
    h.left(("k", "l10"), 10)
    assert [v for v, _ in h.take()] == [("l10", "r8", 10, 8)]  # [8, 13)


def test_elements_arriving_on_the_right_join_buffered_lefts(harness: Any) -> None:
    h = harness(join_op(-2, 3))
    h.left(("k", "l10"), 10).left(("k", "l20"), 20).left(("j", "other key"), 10)
    h.right(("k", "r12"), 12)
    # seen from the right: lefts in [12 - 3, 12 + 2] = [9, 14]
    assert h.take() == [(("l10", "r12", 10, 12), 12)]


def test_negative_bounds(harness: Any) -> None:
    h = harness(join_op(-5, -1))
    _rights(h, 4, 5, 9, 10)
    h.left(("k", "l10"), 10)
    assert sorted(v[1] for v, _ in h.take()) == ["r5", "r9"]  # [10 - 5, 10 - 1]


def test_elements_older_than_the_watermark_are_dropped_or_side_output(harness: Any) -> None:
    left_late, right_late = OutputTag("left-late"), OutputTag("right-late")
    h = harness(join_op(-2, 3, left_late_tag=left_late, right_late_tag=right_late))
    h.watermarks_both(20)
    h.left(("k", "l19"), 19).right(("k", "r18"), 18).left(("k", "l20"), 20)
    # 19 and 18 are behind the watermark 20: late; 20 is not
    assert h.take() == []
    assert h.sides["left-late"] == [(("k", "l19"), 19)]
    assert h.sides["right-late"] == [(("k", "r18"), 18)]
    h.right(("k", "r21"), 21)
    assert [v for v, _ in h.take()] == [("l20", "r21", 20, 21)]


def test_buffers_are_cleaned_up_once_no_partner_can_arrive(harness: Any) -> None:
    h = harness(join_op(-2, 3))
    h.left(("k", "l10"), 10).right(("k", "r10"), 10)
    assert h.take() != []
    assert h.state_entries("LEFT_BUFFER") == 1 and h.state_entries("RIGHT_BUFFER") == 1
    # a right element joins left 10 up to right ts 13: the left is kept until watermark 13;
    # a left joins right 10 from left ts 8 to 12: the right is kept until watermark 12
    h.watermarks_both(11)
    assert h.state_entries("LEFT_BUFFER") == 1 and h.state_entries("RIGHT_BUFFER") == 1
    h.watermarks_both(12)
    assert h.state_entries("LEFT_BUFFER") == 1 and h.state_entries("RIGHT_BUFFER") == 0
    h.watermarks_both(13)
    assert h.state_entries("LEFT_BUFFER") == 0 and h.timers() == 0


def test_the_watermark_is_the_minimum_of_both_inputs(harness: Any) -> None:
    h = harness(join_op(0, 0))
    h.op.process_watermark1(100)
    h.left(("k", "l50"), 50)  # input 2 is still at the minimum watermark: not late
    h.right(("k", "r50"), 50)
    assert [v for v, _ in h.take()] == [("l50", "r50", 50, 50)]
    assert h.watermarks == []
    h.op.process_watermark2(60)
    assert h.watermarks == [60]


def test_interval_join_needs_timestamps(harness: Any) -> None:
    h = harness(join_op(0, 1))
    with pytest.raises(MissingTimestampError, match="need timestamps"):
        h.left(("k", "x"), None)


def test_a_plain_callable_works_as_the_join_function(harness: Any) -> None:
    op = IntervalJoinOperator(
        lambda left, right, ctx: [(left, right, ctx.timestamp())], _key, _key, 0, 5
    )
    h = harness(op)
    h.left(("k", 1), 3).right(("k", 2), 6)
    assert h.take() == [((("k", 1), ("k", 2), 6), 6)]
