"""``OutputTag``: names a side output of a process function."""

from __future__ import annotations

from typing import Any

from flinklet.errors import ApiUsageError


class OutputTag:
    """A typed name for a side output::

    late = OutputTag("late-data", Types.STRING())
    # in a process function:  yield late, value
    stream.get_side_output(late)
    """

    __slots__ = ("tag_id", "type_info")

    def __init__(self, tag_id: str, type_info: Any = None) -> None:
        if not isinstance(tag_id, str) or not tag_id:
            raise ApiUsageError("OutputTag needs a non-empty string id, e.g. OutputTag('late')")
        self.tag_id = tag_id
        self.type_info = type_info

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(("OutputTag", self.tag_id))

    def __repr__(self) -> str:
        return f"OutputTag({self.tag_id!r})"
