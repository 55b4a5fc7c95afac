"""``CheckpointConfig``: how often and how checkpoints are taken (a view on the
environment's ``execution.checkpointing.*`` configuration).

    env.enable_checkpointing(1000)                      # every second, exactly-once
    config = env.get_checkpoint_config()
    config.set_checkpoint_storage_dir("s3://bucket/checkpoints")
    config.set_min_pause_between_checkpoints(500)
    config.set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION)
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from flinklet.common.config_options import CheckpointingOptions
from flinklet.datastream.checkpointing_mode import CheckpointingMode
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet.datastream.stream_execution_environment import StreamExecutionEnvironment


class ExternalizedCheckpointRetention(Enum):
    """What happens to retained checkpoints when the job is cancelled."""

    DELETE_ON_CANCELLATION = 0
    RETAIN_ON_CANCELLATION = 1
    NO_EXTERNALIZED_CHECKPOINTS = 2


# PyFlink 1.x name
ExternalizedCheckpointCleanup = ExternalizedCheckpointRetention


class CheckpointConfig:
    def __init__(self, env: StreamExecutionEnvironment) -> None:
        self._conf = env._conf

    def is_checkpointing_enabled(self) -> bool:
        return self.get_checkpoint_interval() > 0

    def get_checkpoint_interval(self) -> int:
        value = self._conf.get(CheckpointingOptions.CHECKPOINTING_INTERVAL)
        return -1 if value is None else int(value)

    def set_checkpoint_interval(self, checkpoint_interval: int) -> CheckpointConfig:
        if checkpoint_interval < 10:
            raise ApiUsageError("the checkpoint interval must be at least 10 ms")
        self._conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, int(checkpoint_interval))
        return self

    def get_checkpointing_mode(self) -> CheckpointingMode:
        return CheckpointingMode[
            self._conf.get(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE)
        ]

    def set_checkpointing_mode(self, checkpointing_mode: CheckpointingMode) -> CheckpointConfig:
        self._conf.set(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE, checkpointing_mode.name)
        return self

    def get_checkpoint_timeout(self) -> int:
        return int(self._conf.get(CheckpointingOptions.CHECKPOINTING_TIMEOUT))

    def set_checkpoint_timeout(self, checkpoint_timeout: int) -> CheckpointConfig:
        if checkpoint_timeout < 1:
            raise ApiUsageError("the checkpoint timeout must be positive")
        self._conf.set(CheckpointingOptions.CHECKPOINTING_TIMEOUT, int(checkpoint_timeout))
        return self

    def get_min_pause_between_checkpoints(self) -> int:
        return int(self._conf.get(CheckpointingOptions.MIN_PAUSE_BETWEEN_CHECKPOINTS))

    def set_min_pause_between_checkpoints(self, min_pause: int) -> CheckpointConfig:
        if min_pause < 0:
            raise ApiUsageError("the minimum pause must be >= 0")
        self._conf.set(CheckpointingOptions.MIN_PAUSE_BETWEEN_CHECKPOINTS, int(min_pause))
        return self

    def get_max_concurrent_checkpoints(self) -> int:
        return int(self._conf.get(CheckpointingOptions.MAX_CONCURRENT_CHECKPOINTS))

    def set_max_concurrent_checkpoints(self, max_concurrent_checkpoints: int) -> CheckpointConfig:
        if max_concurrent_checkpoints < 1:
            raise ApiUsageError("max concurrent checkpoints must be >= 1")
        self._conf.set(CheckpointingOptions.MAX_CONCURRENT_CHECKPOINTS, max_concurrent_checkpoints)
        return self

    def get_tolerable_checkpoint_failure_number(self) -> int:
        return int(self._conf.get(CheckpointingOptions.TOLERABLE_FAILURE_NUMBER))

    def set_tolerable_checkpoint_failure_number(self, number: int) -> CheckpointConfig:
        if number < 0:
            raise ApiUsageError("the tolerable failure number must be >= 0")
        self._conf.set(CheckpointingOptions.TOLERABLE_FAILURE_NUMBER, number)
        return self

    def set_externalized_checkpoint_retention(
        self, retention: ExternalizedCheckpointRetention
    ) -> CheckpointConfig:
        self._conf.set(CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION, retention.name)
        return self

    enable_externalized_checkpoints = set_externalized_checkpoint_retention
    set_externalized_checkpoint_cleanup = set_externalized_checkpoint_retention

    def get_externalized_checkpoint_retention(self) -> ExternalizedCheckpointRetention:
        return ExternalizedCheckpointRetention[
            self._conf.get(CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION)
        ]

    def set_checkpoint_storage_dir(self, checkpoint_path: str) -> CheckpointConfig:
        """A directory (``file:///...`` or a path) or ``s3://bucket/prefix``."""
        self._conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpoint_path)
        return self

    set_checkpoint_storage = set_checkpoint_storage_dir

    def get_checkpoint_storage_dir(self) -> str | None:
        return self._conf.get(CheckpointingOptions.CHECKPOINTS_DIRECTORY)

    def set_savepoint_dir(self, savepoint_path: str) -> CheckpointConfig:
        self._conf.set(CheckpointingOptions.SAVEPOINT_DIRECTORY, savepoint_path)
        return self

    def set_num_retained_checkpoints(self, num: int) -> CheckpointConfig:
        if num < 1:
            raise ApiUsageError("at least one checkpoint must be retained")
        self._conf.set(CheckpointingOptions.MAX_RETAINED_CHECKPOINTS, num)
        return self

    def enable_unaligned_checkpoints(self, enabled: bool = True) -> CheckpointConfig:
        self._conf.set(CheckpointingOptions.ENABLE_UNALIGNED, enabled)
        return self

    def is_unaligned_checkpoints_enabled(self) -> bool:
        return bool(self._conf.get(CheckpointingOptions.ENABLE_UNALIGNED))
