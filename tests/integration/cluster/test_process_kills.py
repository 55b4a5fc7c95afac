"""Exactly-once under repeated kill -9 of executing processes (slot processes of the
TaskManagers), with file checkpoints and with S3 checkpoints on a real S3 server."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flinklet.common import Configuration, Encoder, RestartStrategies, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import DataGeneratorSource, FileSink, RateLimiterStrategy

TOTAL = 12_000
KEYS = 6


class RunningCount(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield f"{ctx.get_current_key()},{n}"


def expected() -> set[str]:
    return {f"{k},{n}" for k in range(KEYS) for n in range(1, TOTAL // KEYS + 1)}


def committed(directory: Path) -> list[str]:
    out: list[str] = []
    for f in sorted(directory.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            out.extend(f.read_text().splitlines())
    return out


def run_with_kills(cluster: Any, env: StreamExecutionEnvironment, out: Path, kills: int) -> None:
    env.set_parallelism(2)
    env.enable_checkpointing(150)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(kills + 10, 100))
    src = DataGeneratorSource(lambda i: i, TOTAL, RateLimiterStrategy.per_second(600))
    (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
        .key_by(lambda x: x % KEYS)
        .process(RunningCount())
        .sink_to(FileSink.for_row_format(str(out), Encoder.simple_string_encoder()).build())
    )
    client = env.execute_async("kill -9 loop")
    rng = random.Random(7)
    done = 0
    deadline = time.monotonic() + 240
    while done < kills and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.4, 1.2))
        job = next(iter(cluster.jm.jobs.values()))
        if job.phase != "RUNNING":
            continue
        slot = rng.choice([s for s in cluster.jm.slots.values() if s.alive])
        try:
            os.kill(slot.pid, signal.SIGKILL)  # the TaskManager restarts its slot process
        except ProcessLookupError:
            continue
        done += 1
    assert done == kills, f"only {done} kills happened"
    client.get_job_execution_result().result(timeout=300)
    job = next(iter(cluster.jm.jobs.values()))
    assert job.num_restarts >= kills


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hashmap", "rocksdb"])
def test_twenty_process_kills_with_file_checkpoints(
    local_cluster: Any, tmp_path: Path, backend: str
) -> None:
    cluster = local_cluster(taskmanagers=2, slots=1)
    conf = Configuration()
    conf.set_string("state.backend.type", backend)
    conf.set_string("state.backend.rocksdb.localdir", str(tmp_path / "rocksdb"))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    out = tmp_path / "out"
    run_with_kills(cluster, env, out, kills=20)
    lines = committed(out)
    assert len(lines) == len(set(lines)), "duplicates in the committed output"
    assert set(lines) == expected()


@pytest.mark.slow
@pytest.mark.s3
def test_process_kills_with_s3_checkpoints(
    local_cluster: Any, tmp_path: Path, s3_server: Any
) -> None:
    cluster = local_cluster(taskmanagers=2, slots=1)
    conf = Configuration()
    conf.set_string("execution.checkpointing.dir", f"s3://{s3_server.bucket}/kills-{os.getpid()}")
    conf.set_string("s3.endpoint", s3_server.endpoint)
    conf.set_string("s3.access-key", s3_server.access_key)
    conf.set_string("s3.secret-key", s3_server.secret_key)
    conf.set_string("s3.path.style.access", "true")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    out = tmp_path / "out"
    run_with_kills(cluster, env, out, kills=20)
    lines = committed(out)
    assert len(lines) == len(set(lines))
    assert set(lines) == expected()
