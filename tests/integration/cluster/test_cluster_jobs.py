"""Jobs on a real multi-process cluster: results, TaskManager loss with exactly-once
recovery, backpressure with bounded memory, stop-with-savepoint and rescaled resume."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.unit.checkpointing.test_final_checkpoint_ids import run as run_commit_per_checkpoint

from flinklet.common import Encoder, RestartStrategies, Time, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import (
    DataGeneratorSource,
    FileSink,
    NumberSequenceSource,
    RateLimiterStrategy,
)
from flinklet.datastream.window import TumblingEventTimeWindows


class RunningCount(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield f"{ctx.get_current_key()},{n}"


def committed_lines(directory: Path) -> list[str]:
    lines: list[str] = []
    for f in sorted(directory.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            lines.extend(f.read_text().splitlines())
    return lines


def test_keyed_window_job_across_taskmanagers(local_cluster: Any, tmp_path: Path) -> None:
    local_cluster(taskmanagers=3, slots=1)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    out = tmp_path / "out"
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda v, ts: v * 10
    )
    ds = env.from_source(NumberSequenceSource(0, 29_999), strategy, "numbers")
    (
        ds.map(lambda x: (x % 7, 1))
        .key_by(lambda p: p[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(10)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .map(lambda p: f"{p[0]},{p[1]}")
        .sink_to(FileSink.for_row_format(str(out), Encoder.simple_string_encoder()).build())
    )
    env.execute("windows on a cluster")
    # 10 s windows hold 1,000 numbers each (timestamps 10 ms apart): per key the window
    # counts add up to the numbers with that residue
    totals: Counter[int] = Counter()
    for line in committed_lines(out):
        key, count = line.split(",")
        totals[int(key)] += int(count)
    assert totals == Counter({k: len(range(k, 30_000, 7)) for k in range(7)})


def test_taskmanager_kill_recovers_exactly_once(local_cluster: Any, tmp_path: Path) -> None:
    cluster = local_cluster(taskmanagers=2, slots=1)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(100)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(5, 200))
    total = 8_000
    out = tmp_path / "out"
    src = DataGeneratorSource(lambda i: i, total, RateLimiterStrategy.per_second(2_000))
    (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "gen")
        .key_by(lambda x: x % 5)
        .process(RunningCount())
        .sink_to(FileSink.for_row_format(str(out), Encoder.simple_string_encoder()).build())
    )
    client = env.execute_async("survives a TaskManager kill")
    time.sleep(1.5)
    cluster.kill_tm("tm1")
    cluster.start_tm("tm2")  # the replacement, as Kubernetes would start one
    client.get_job_execution_result().result(timeout=120)
    lines = committed_lines(out)
    # exactly once: every (key, count) exactly once, counts 1..n per key without gaps
    assert len(lines) == len(set(lines)) == total
    per_key = Counter(line.split(",")[0] for line in lines)
    assert per_key == Counter({str(k): total // 5 for k in range(5)})
    job = next(iter(cluster.jm.jobs.values()))
    assert job.num_restarts >= 1


def test_a_bounded_job_commits_under_the_final_checkpoint_id_on_a_cluster(
    local_cluster: Any, tmp_path: Path
) -> None:
    """A finished task's final snapshot is taken in its slot process for the checkpoint
    the JobManager triggered, so the function sees that id and its notification."""
    local_cluster(taskmanagers=1, slots=1)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.enable_checkpointing(60_000)  # no periodic checkpoint: only the final one
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    committed, snapshots = run_commit_per_checkpoint(env, tmp_path, 1_000)
    assert committed == list(range(1, 1_001))
    [(cid, ts)] = [tuple(map(int, line.split())) for line in snapshots]
    assert cid > 0 and ts > 0
