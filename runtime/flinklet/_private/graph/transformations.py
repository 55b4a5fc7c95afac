"""Transformations: the logical plan that DataStream API calls build up.

Each ``DataStream`` wraps one transformation. Physical ones become operators (stream
nodes); virtual ones (partitioning, union, side-output selection) only shape the edges
between operators. The environment turns the transformations into a ``StreamGraph``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flinklet._private.exec.operators import StreamOperator
    from flinklet._private.network.partitioners import Partitioner

OperatorFactory = Callable[[], "StreamOperator"]

_ids = itertools.count(1)


class ChainingStrategy:
    ALWAYS = "ALWAYS"  # chain to predecessor and successors where possible
    HEAD = "HEAD"  # start a new chain here (start_new_chain)
    NEVER = "NEVER"  # neither chain to predecessor nor to successors (disable_chaining)


@dataclass(eq=False)
class Transformation:
    """A node of the logical plan."""

    name: str
    output_type: Any = None
    parallelism: int | None = None
    max_parallelism: int | None = None
    uid: str | None = None
    uid_hash: str | None = None
    chaining: str = ChainingStrategy.ALWAYS
    slot_sharing_group: str | None = None
    description: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    parallelism_configured: bool = False

    @property
    def inputs(self) -> list[Transformation]:
        return []

    @property
    def is_virtual(self) -> bool:
        return False


@dataclass(eq=False)
class SourceTransformation(Transformation):
    """A source: ``factory`` builds the reader-driving operator for each subtask."""

    factory: OperatorFactory | None = None
    bounded: bool = True


@dataclass(eq=False)
class OneInputTransformation(Transformation):
    input: Transformation | None = None
    factory: OperatorFactory | None = None
    key_selector: Callable[[Any], Any] | None = None
    is_sink: bool = False

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input] if self.input is not None else []


@dataclass(eq=False)
class TwoInputTransformation(Transformation):
    input1: Transformation | None = None
    input2: Transformation | None = None
    factory: OperatorFactory | None = None
    key_selector1: Callable[[Any], Any] | None = None
    key_selector2: Callable[[Any], Any] | None = None

    @property
    def inputs(self) -> list[Transformation]:
        return [t for t in (self.input1, self.input2) if t is not None]


@dataclass(eq=False)
class PartitionTransformation(Transformation):
    """Virtual: sets how records travel to the next operator."""

    input: Transformation | None = None
    partitioner: Partitioner | None = None

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input] if self.input is not None else []

    @property
    def is_virtual(self) -> bool:
        return True


@dataclass(eq=False)
class UnionTransformation(Transformation):
    """Virtual: several streams of the same type read as one input."""

    union_inputs: list[Transformation] = field(default_factory=list)

    @property
    def inputs(self) -> list[Transformation]:
        return list(self.union_inputs)

    @property
    def is_virtual(self) -> bool:
        return True


@dataclass(eq=False)
class SideOutputTransformation(Transformation):
    """Virtual: selects the records an operator emitted to ``tag_id``."""

    input: Transformation | None = None
    tag_id: str = ""

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input] if self.input is not None else []

    @property
    def is_virtual(self) -> bool:
        return True
