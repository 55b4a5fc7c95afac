"""The final snapshot of a finished task is taken for a real checkpoint: its functions see
that checkpoint's id and timestamp (not 0) and are then notified that it completed, so a
sink keyed by checkpoint id commits the records of a bounded job's last stretch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    CheckpointedFunction,
    CheckpointListener,
    SinkFunction,
    StreamExecutionEnvironment,
)
from flinklet.datastream.connectors import NumberSequenceSource
from flinklet.datastream.functions import FunctionInitializationContext, FunctionSnapshotContext


class CommitPerCheckpoint(SinkFunction, CheckpointedFunction, CheckpointListener):
    """Stages records per checkpoint id and commits (appends to ``path``) exactly the ones
    staged for the id it is notified of; logs its snapshots to ``path.snapshots``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.buffer: list[int] = []
        self.staged: dict[int, list[int]] = {}

    def initialize_state(self, context: FunctionInitializationContext) -> None:
        pass

    def invoke(self, value: int, context: Any) -> None:
        self.buffer.append(value)

    def snapshot_state(self, context: FunctionSnapshotContext) -> None:
        cid = context.get_checkpoint_id()
        self.staged[cid] = self.buffer
        self.buffer = []
        with open(self.path + ".snapshots", "a") as f:
            f.write(f"{cid} {context.get_checkpoint_timestamp()}\n")

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        with open(self.path, "a") as f:
            f.writelines(f"{v}\n" for v in self.staged.pop(checkpoint_id, []))


def run(env: StreamExecutionEnvironment, tmp_path: Path, n: int) -> tuple[list[int], list[str]]:
    out = tmp_path / "committed"
    env.from_source(
        NumberSequenceSource(1, n), WatermarkStrategy.no_watermarks(), "numbers"
    ).add_sink(CommitPerCheckpoint(str(out)))
    env.execute("commit per checkpoint id")
    committed = [int(v) for v in out.read_text().split()] if out.exists() else []
    return committed, (tmp_path / "committed.snapshots").read_text().splitlines()


def test_a_bounded_job_commits_its_last_records_under_the_final_checkpoint_id(
    tmp_path: Path,
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.enable_checkpointing(60_000)  # no periodic checkpoint: only the final one
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    started = int(time.time() * 1000)
    committed, snapshots = run(env, tmp_path, 1_000)
    assert committed == list(range(1, 1_001))
    [(cid, ts)] = [tuple(map(int, line.split())) for line in snapshots]
    [final] = env._last_job.coordinator.stats.history  # as the REST API reports it
    assert (final["status"], final["id"]) == ("COMPLETED", cid)
    assert cid > 0
    assert started <= ts <= int(time.time() * 1000)
