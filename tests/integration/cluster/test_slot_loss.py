"""The JobManager's view of slots against real slot processes: a slot it declares lost
while the process lives (a heartbeat timeout under load) comes back, and a finished job's
output is committed when its result is available."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flinklet.common import Encoder, RestartStrategies
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource, FileSink, RateLimiterStrategy

TOTAL = 1_200


def committed(directory: Path) -> list[str]:
    out: list[str] = []
    for f in sorted(directory.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            out.extend(f.read_text().splitlines())
    return out


def counting_job(tmp_path: Path, rate: int) -> tuple[StreamExecutionEnvironment, Path]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(150)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(5, 100))
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    out = tmp_path / "out"
    src = DataGeneratorSource(lambda i: i, TOTAL, RateLimiterStrategy.per_second(rate))
    (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
        .map(lambda x: str(x))
        .sink_to(FileSink.for_row_format(str(out), Encoder.simple_string_encoder()).build())
    )
    return env, out


def test_a_slot_declared_lost_while_its_process_lives_comes_back(
    local_cluster: Any, tmp_path: Path
) -> None:
    cluster = local_cluster(taskmanagers=2, slots=1)
    env, out = counting_job(tmp_path, rate=200)
    client = env.execute_async("slot lost by heartbeat")
    deadline = time.monotonic() + 60
    while not cluster.jm.jobs or next(iter(cluster.jm.jobs.values())).phase != "RUNNING":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    victim = next(iter(cluster.jm.slots.values()))
    # what the loop does when no heartbeat arrived for the timeout: the slot's process
    # still runs, and the job needs it back (2 TaskManagers with 1 slot each)
    cluster.jm.post(("slot_lost", victim.slot_id, "no heartbeat for 5 s (simulated)"))
    client.get_job_execution_result().result(timeout=120)
    job = next(iter(cluster.jm.jobs.values()))
    assert job.num_restarts == 1
    assert victim.slot_id not in cluster.jm.slots  # a new slot process replaced it
    assert sorted(committed(out), key=int) == [str(i) for i in range(TOTAL)]


def test_the_output_is_committed_when_the_result_is_available(
    local_cluster: Any, tmp_path: Path
) -> None:
    local_cluster(taskmanagers=2, slots=1)
    for run in range(3):
        env, out = counting_job(tmp_path / f"run-{run}", rate=2_000)
        env.execute_async(f"commit before the result {run}").get_job_execution_result().result(
            timeout=120
        )
        lines = committed(out)  # at once: the final checkpoint's commit ran everywhere
        assert sorted(lines, key=int) == [str(i) for i in range(TOTAL)]
