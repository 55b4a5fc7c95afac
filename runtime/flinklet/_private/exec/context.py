"""The runtime context handed to user functions, and what operators get at setup.

``OperatorEnv`` bundles what the task gives each operator: subtask identity, clocks,
state backends, metrics and job parameters. ``StreamingRuntimeContext`` is the public
``RuntimeContext`` view of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flinklet._private.exec.timers import ProcessingTimeService
from flinklet.datastream.functions import MetricGroup, RuntimeContext
from flinklet.errors import StateError

if TYPE_CHECKING:
    from flinklet._private.metrics import TaskMetricGroup
    from flinklet._private.state.backend import KeyedStateBackend, OperatorStateBackend
    from flinklet.datastream.state import (
        AggregatingState,
        AggregatingStateDescriptor,
        ListState,
        ListStateDescriptor,
        MapState,
        MapStateDescriptor,
        ReducingState,
        ReducingStateDescriptor,
        StateDescriptor,
        ValueState,
        ValueStateDescriptor,
    )


@dataclass
class OperatorEnv:
    job_id: str
    task_name: str
    operator_name: str
    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    attempt: int
    pts: ProcessingTimeService
    metrics: TaskMetricGroup
    job_parameters: dict[str, str] = field(default_factory=dict)
    keyed_backend: KeyedStateBackend | None = None
    operator_state: OperatorStateBackend | None = None
    batch_mode: bool = False
    auto_watermark_interval: int = 200
    checkpointing: bool = False


class SnapshotContext:
    """``FunctionSnapshotContext`` for ``CheckpointedFunction.snapshot_state``."""

    def __init__(self, checkpoint_id: int, timestamp: int) -> None:
        self._id = checkpoint_id
        self._ts = timestamp

    def get_checkpoint_id(self) -> int:
        return self._id

    def get_checkpoint_timestamp(self) -> int:
        return self._ts


class InitializationContext:
    """``FunctionInitializationContext`` for ``CheckpointedFunction.initialize_state``."""

    def __init__(self, restored: bool, env: OperatorEnv, runtime_context: RuntimeContext) -> None:
        self._restored = restored
        self._env = env
        self._runtime_context = runtime_context

    def is_restored(self) -> bool:
        return self._restored

    def get_operator_state_store(self) -> Any:
        return self._env.operator_state

    def get_keyed_state_store(self) -> RuntimeContext:
        return self._runtime_context


class StreamingRuntimeContext(RuntimeContext):
    def __init__(self, env: OperatorEnv) -> None:
        self._env = env

    def get_task_name(self) -> str:
        return self._env.task_name

    def get_number_of_parallel_subtasks(self) -> int:
        return self._env.parallelism

    def get_max_number_of_parallel_subtasks(self) -> int:
        return self._env.max_parallelism

    def get_index_of_this_subtask(self) -> int:
        return self._env.subtask_index

    def get_attempt_number(self) -> int:
        return self._env.attempt

    def get_task_name_with_subtasks(self) -> str:
        e = self._env
        return f"{e.task_name} ({e.subtask_index + 1}/{e.parallelism})"

    def get_job_parameter(self, key: str, default_value: str) -> str:
        return self._env.job_parameters.get(key, default_value)

    def get_metrics_group(self) -> MetricGroup:
        return self._env.metrics

    def _keyed(self, descriptor: StateDescriptor) -> Any:
        backend = self._env.keyed_backend
        if backend is None:
            raise StateError(
                f"Keyed state '{descriptor.name}' was requested in operator "
                f"'{self._env.operator_name}', which is not keyed. Keyed state is only "
                f"available on a KeyedStream: call key_by(...) before this operator, or use "
                f"operator state (CheckpointedFunction) instead"
            )
        return backend.get_partitioned_state(descriptor)

    def get_state(self, state_descriptor: ValueStateDescriptor) -> ValueState[Any]:
        return self._keyed(state_descriptor)  # type: ignore[no-any-return]

    def get_list_state(self, state_descriptor: ListStateDescriptor) -> ListState[Any]:
        return self._keyed(state_descriptor)  # type: ignore[no-any-return]

    def get_map_state(self, state_descriptor: MapStateDescriptor) -> MapState[Any, Any]:
        return self._keyed(state_descriptor)  # type: ignore[no-any-return]

    def get_reducing_state(self, state_descriptor: ReducingStateDescriptor) -> ReducingState[Any]:
        return self._keyed(state_descriptor)  # type: ignore[no-any-return]

    def get_aggregating_state(
        self, state_descriptor: AggregatingStateDescriptor
    ) -> AggregatingState[Any, Any]:
        return self._keyed(state_descriptor)  # type: ignore[no-any-return]
