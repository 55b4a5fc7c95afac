"""Which channels a slot process creates for its subtasks of one execution attempt.

Every channel of the job graph connects an upstream subtask to a downstream subtask; the
JobManager's assignment says which slot runs each. A slot builds in-process channels
between its own subtasks, remote output channels to subtasks elsewhere and remote input
channels from them. Keys are stable across processes (vertex ids and edge positions, not
object ids), which is what lets the two ends of a TCP channel find each other.
"""

from __future__ import annotations

from typing import Any

from flinklet._private.cluster.network import NetworkService
from flinklet._private.exec.executor import _pointwise_targets
from flinklet._private.graph.stream_graph import JobGraph
from flinklet._private.network.channels import LocalChannel

SubtaskKey = tuple[int, int]  # (vertex id, subtask index)


def slot_channels(
    job_graph: JobGraph,
    job_id: str,
    attempt: int,
    assignment: dict[SubtaskKey, str],
    addresses: dict[str, tuple[str, int]],
    me: str,
    network: NetworkService,
    capacity: int,
) -> dict[tuple[int, int, int], LocalChannel]:
    channels: dict[tuple[int, int, int], LocalChannel] = {}
    for v in job_graph.vertices:
        for pos, e in enumerate(v.outputs):
            sp, dp = e.source.parallelism, e.target.parallelism
            for s in range(sp):
                producer = assignment[(e.source.id, s)]
                targets = _pointwise_targets(sp, dp, s) if e.partitioner.pointwise else range(dp)
                for d in targets:
                    consumer = assignment[(e.target.id, d)]
                    if me not in (producer, consumer):
                        continue
                    local_key = (id(e), s, d)
                    if producer == consumer:
                        channels[local_key] = LocalChannel(capacity, f"{e.source.name}[{s}]->{d}")
                        continue
                    key: Any = (job_id, attempt, e.source.id, pos, s, d)
                    if producer == me:
                        channels[local_key] = network.output_channel(key, addresses[consumer])
                    else:
                        channels[local_key] = network.input_channel(
                            key, capacity, addresses[producer]
                        )
    return channels
