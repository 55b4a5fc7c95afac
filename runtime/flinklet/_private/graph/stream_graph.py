"""StreamGraph and JobGraph: from the logical plan to chained job vertices.

``build_stream_graph`` resolves virtual transformations into edges that carry a
partitioner and an optional side-output tag. ``build_job_graph`` chains operators
connected by forward edges with equal parallelism (unless chaining is disabled) into job
vertices; every vertex becomes ``parallelism`` subtasks at execution time. Both graphs
are plain, picklable data so the cluster runtime can ship them to TaskManagers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flinklet._private.graph.transformations import (
    ChainingStrategy,
    OneInputTransformation,
    OperatorFactory,
    PartitionTransformation,
    SideOutputTransformation,
    SourceTransformation,
    Transformation,
    TwoInputTransformation,
    UnionTransformation,
)
from flinklet._private.network.partitioners import (
    ForwardPartitioner,
    Partitioner,
    RebalancePartitioner,
)
from flinklet._private.state.keygroups import default_max_parallelism
from flinklet.errors import ApiUsageError


@dataclass(eq=False)
class StreamNode:
    id: int
    name: str
    factory: OperatorFactory
    parallelism: int
    max_parallelism: int
    uid: str
    chaining: str
    slot_sharing_group: str
    is_source: bool = False
    bounded: bool = True
    is_sink: bool = False
    key_selectors: tuple[Callable[[Any], Any] | None, ...] = ()
    in_edges: list[StreamEdge] = field(default_factory=list)
    out_edges: list[StreamEdge] = field(default_factory=list)
    num_inputs: int = 0


@dataclass(eq=False)
class StreamEdge:
    source: StreamNode
    target: StreamNode
    partitioner: Partitioner
    type_number: int  # 1 or 2: which input of the target
    tag_id: str | None = None


@dataclass(eq=False)
class StreamGraph:
    job_name: str
    nodes: list[StreamNode]

    @property
    def sources(self) -> list[StreamNode]:
        return [n for n in self.nodes if n.is_source]


_Producer = tuple[StreamNode, Partitioner | None, str | None]


def _auto_uid(node_path: str) -> str:
    return hashlib.sha1(node_path.encode()).hexdigest()[:32]


def build_stream_graph(
    job_name: str,
    sinks_and_leaves: Sequence[Transformation],
    default_parallelism: int,
    default_max_parallelism: int | None,
    chaining_enabled: bool = True,
) -> StreamGraph:
    """Translate the transformations reachable from ``sinks_and_leaves`` into a graph."""
    nodes: dict[int, StreamNode] = {}
    order: list[StreamNode] = []
    # (transformation id) -> list of (node, partitioner|None, tag|None) producing it
    resolved: dict[int, list[_Producer]] = {}

    def visit(t: Transformation, path: str) -> list[_Producer]:
        if t.id in resolved:
            return resolved[t.id]
        if isinstance(t, PartitionTransformation):
            assert t.input is not None and t.partitioner is not None
            ups = visit(t.input, path + "/" + t.name)
            out: list[_Producer] = [(n, t.partitioner, tag) for n, _p, tag in ups]
        elif isinstance(t, UnionTransformation):
            out = []
            for i, inp in enumerate(t.union_inputs):
                out.extend(visit(inp, f"{path}/union{i}"))
        elif isinstance(t, SideOutputTransformation):
            assert t.input is not None
            ups = visit(t.input, path + "/side")
            out = [(n, p, t.tag_id) for n, p, _tag in ups]
        else:
            node = add_node(t, path)
            out = [(node, None, None)]
        resolved[t.id] = out
        return out

    def add_node(t: Transformation, path: str) -> StreamNode:
        parallelism = t.parallelism if t.parallelism is not None else default_parallelism
        if parallelism < 1:
            raise ApiUsageError(
                f"Operator '{t.name}' has parallelism {parallelism}; use a value >= 1"
            )
        max_p = (
            t.max_parallelism or default_max_parallelism or default_max_parallelism_of(parallelism)
        )
        if parallelism > max_p:
            raise ApiUsageError(
                f"Operator '{t.name}' has parallelism {parallelism} above its max parallelism "
                f"{max_p}; raise set_max_parallelism or lower the parallelism"
            )
        chaining = t.chaining if chaining_enabled else ChainingStrategy.NEVER
        node = StreamNode(
            id=t.id,
            name=t.name,
            factory=_factory_of(t),
            parallelism=parallelism,
            max_parallelism=max_p,
            uid=t.uid or "",
            chaining=chaining,
            slot_sharing_group=t.slot_sharing_group or "default",
            is_source=isinstance(t, SourceTransformation),
            bounded=t.bounded if isinstance(t, SourceTransformation) else True,
            is_sink=isinstance(t, OneInputTransformation) and t.is_sink,
        )
        nodes[t.id] = node
        inputs: list[tuple[int, Transformation]] = []
        if isinstance(t, OneInputTransformation):
            assert t.input is not None
            inputs = [(1, t.input)]
            node.key_selectors = (t.key_selector,)
        elif isinstance(t, TwoInputTransformation):
            assert t.input1 is not None and t.input2 is not None
            inputs = [(1, t.input1), (2, t.input2)]
            node.key_selectors = (t.key_selector1, t.key_selector2)
        node.num_inputs = len(inputs)
        for type_number, inp in inputs:
            for up, part, tag in visit(inp, f"{path}/{t.name}"):
                if part is None:
                    part = (
                        ForwardPartitioner()
                        if up.parallelism == parallelism
                        else RebalancePartitioner()
                    )
                if isinstance(part, ForwardPartitioner) and up.parallelism != parallelism:
                    raise ApiUsageError(
                        f"Forward partitioning does not allow a change of parallelism: "
                        f"'{up.name}' has {up.parallelism}, '{t.name}' has {parallelism}. "
                        f"Use rebalance() or rescale() between them, or give both the "
                        f"same parallelism"
                    )
                edge = StreamEdge(up, node, part, type_number, tag)
                up.out_edges.append(edge)
                node.in_edges.append(edge)
        if not node.uid:
            node.uid = _auto_uid(f"{path}/{t.name}#{len(order)}")
        order.append(node)
        return node

    for leaf in sinks_and_leaves:
        visit(leaf, "")
    uids: dict[str, str] = {}
    for n in order:
        if n.uid in uids:
            raise ApiUsageError(
                f"Operator uid '{n.uid}' is used by both '{uids[n.uid]}' and '{n.name}'; "
                f"uids must be unique within a job"
            )
        uids[n.uid] = n.name
    return StreamGraph(job_name, order)


def default_max_parallelism_of(parallelism: int) -> int:
    return default_max_parallelism(parallelism)


def _factory_of(t: Transformation) -> OperatorFactory:
    factory = getattr(t, "factory", None)
    if factory is None:  # pragma: no cover - every physical transformation has one
        raise ApiUsageError(f"transformation '{t.name}' has no operator")
    return factory  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- JobGraph


@dataclass(eq=False)
class JobEdge:
    source: JobVertex
    target: JobVertex
    partitioner: Partitioner
    type_number: int
    # the stream edge inside the chains this edge came from
    stream_edge: StreamEdge


@dataclass(eq=False)
class JobVertex:
    id: int
    name: str
    nodes: list[StreamNode]  # chain, head first, topologically ordered
    parallelism: int
    max_parallelism: int
    is_source: bool
    inputs: list[JobEdge] = field(default_factory=list)
    outputs: list[JobEdge] = field(default_factory=list)

    @property
    def head(self) -> StreamNode:
        return self.nodes[0]


@dataclass(eq=False)
class JobGraph:
    job_name: str
    vertices: list[JobVertex]  # topological order

    @property
    def bounded(self) -> bool:
        return all(v.head.bounded for v in self.vertices if v.is_source)

    def vertex_of_uid(self, uid: str) -> JobVertex | None:
        for v in self.vertices:
            for n in v.nodes:
                if n.uid == uid:
                    return v
        return None


def is_chainable(edge: StreamEdge) -> bool:
    up, down = edge.source, edge.target
    return (
        len(down.in_edges) == 1
        and down.num_inputs == 1
        and isinstance(edge.partitioner, ForwardPartitioner)
        and up.parallelism == down.parallelism
        and down.chaining == ChainingStrategy.ALWAYS
        and up.chaining != ChainingStrategy.NEVER
        and up.slot_sharing_group == down.slot_sharing_group
        and not down.is_source
    )


def build_job_graph(graph: StreamGraph) -> JobGraph:
    vertex_of: dict[int, JobVertex] = {}
    vertices: list[JobVertex] = []
    next_id = 1
    for node in graph.nodes:  # topological: inputs come first
        chained_in = [e for e in node.in_edges if is_chainable(e)]
        if chained_in:
            v = vertex_of[chained_in[0].source.id]
            v.nodes.append(node)
            vertex_of[node.id] = v
            continue
        v = JobVertex(
            id=next_id,
            name=node.name,
            nodes=[node],
            parallelism=node.parallelism,
            max_parallelism=node.max_parallelism,
            is_source=node.is_source,
        )
        next_id += 1
        vertices.append(v)
        vertex_of[node.id] = v
    for v in vertices:
        v.name = " -> ".join(n.name for n in v.nodes)
    for node in graph.nodes:
        for e in node.out_edges:
            if is_chainable(e):
                continue
            src, dst = vertex_of[e.source.id], vertex_of[e.target.id]
            je = JobEdge(src, dst, e.partitioner, e.type_number, e)
            src.outputs.append(je)
            dst.inputs.append(je)
    return JobGraph(graph.job_name, vertices)
