"""Exactly-once output through failures, restarts, stop-with-savepoint and rescaling: the
committed files of a keyed running count hold each line exactly once (local engine,
file checkpoint storage in a temp dir)."""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flinklet.common import Configuration, Encoder, RestartStrategies, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import MapFunction, RuntimeContext, StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
from flinklet.datastream.connectors.file_system import FileSink, OutputFileConfig, RollingPolicy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
KEYS = 7
TOTAL = 20_000
NUM_FAILURES = 24
FAILURES: Counter[str] = Counter()  # run name -> failures injected (shared by all copies)


def schedule(seed: int) -> list[tuple[str, int]]:
    """Attempt ``a`` fails in stage ``schedule[a][0]`` at the first record whose source
    index is at least ``schedule[a][1]``: before ``key_by`` (in the source's task) or right
    before the sink (in the sink's task). Thresholds grow, so every attempt fails once."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(TOTAL // 50, TOTAL * 4 // 5), NUM_FAILURES))
    return [(rng.choice(("pre", "post")), p) for p in points]


class Chaos(MapFunction[Any, Any]):
    """Raises at the scheduled points; records pass through unchanged."""

    def __init__(self, run: str, stage: str, plan: list[tuple[str, int]]) -> None:
        self.run, self.stage, self.plan = run, stage, plan

    def open(self, runtime_context: RuntimeContext) -> None:
        attempt = runtime_context.get_attempt_number()
        self.fail_at: int | None = None
        if attempt < len(self.plan) and self.plan[attempt][0] == self.stage:
            self.fail_at = self.plan[attempt][1]

    def map(self, value: Any) -> Any:
        if self.fail_at is not None:
            index = value if self.stage == "pre" else value[0] + KEYS * (value[1] - 1)
            if index >= self.fail_at:
                self.fail_at = None
                FAILURES[self.run] += 1
                raise RuntimeError(f"injected failure at record {index}")
        return value


def expected_lines(total: int, keys: int = KEYS) -> Counter[str]:
    """The running count's lines: ``(k, 1)`` ... ``(k, n_k)`` for every key."""
    counts = Counter(i % keys for i in range(total))
    return Counter(str((k, c)) for k, n in counts.items() for c in range(1, n + 1))


def committed_lines(directory: Path) -> Counter[str]:
    """Lines of the visible (committed) files; hidden in-progress files do not count."""
    lines: Counter[str] = Counter()
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if not name.startswith((".", "_")):
                lines.update(Path(root, name).read_text().splitlines())
    return lines


def hidden_files(directory: Path) -> list[str]:
    return [n for _r, _d, files in os.walk(directory) for n in files if n.startswith(".")]


def file_sink(directory: Path, policy: RollingPolicy) -> FileSink:
    return (
        FileSink.for_row_format(str(directory), Encoder.simple_string_encoder())
        .with_output_file_config(OutputFileConfig.builder().with_part_suffix(".txt").build())
        .with_rolling_policy(policy)
        .with_bucket_check_interval(20)
        .build()
    )


def running_count_job(
    tmp_path: Path, run: str, plan: list[tuple[str, int]], rate: float | None
) -> tuple[StreamExecutionEnvironment, Any]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(100, 0))
    limiter = RateLimiterStrategy.per_second(rate) if rate else None
    src = DataGeneratorSource(lambda i: i, TOTAL, limiter)
    counts = (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
        .map(Chaos(run, "pre", plan))
        .map(lambda i: (i % KEYS, 1), output_type=Types.TUPLE([Types.INT(), Types.LONG()]))
        .key_by(lambda pair: pair[0])
        .sum(1)
        .map(Chaos(run, "post", plan))
    )
    return env, counts


def test_a_failure_free_run_commits_every_line_once(tmp_path: Path) -> None:
    env, counts = running_count_job(tmp_path, "clean", [], None)
    # small parts, rolled by size and time as well as at checkpoints
    counts.sink_to(file_sink(tmp_path / "out", RollingPolicy.default_rolling_policy(4_096, 30)))
    env.execute("clean")
    assert committed_lines(tmp_path / "out") == expected_lines(TOTAL)
    assert hidden_files(tmp_path / "out") == []


@pytest.mark.parametrize(
    "policy",
    [
        RollingPolicy.default_rolling_policy(part_size=4_096, rollover_interval=30),
        RollingPolicy.on_checkpoint_rolling_policy(),
    ],
    ids=["default-policy", "on-checkpoint-policy"],
)
def test_file_sink_output_is_exactly_once_through_many_failures(
    tmp_path: Path, policy: RollingPolicy
) -> None:
    run = f"file-sink-{type(policy).__name__}"
    FAILURES[run] = 0
    env, counts = running_count_job(tmp_path, run, schedule(seed=7), 10_000)
    counts.sink_to(file_sink(tmp_path / "out", policy)).uid("file-sink")
    env.execute("file sink under failures")
    assert FAILURES[run] == NUM_FAILURES
    assert committed_lines(tmp_path / "out") == expected_lines(TOTAL)
    assert hidden_files(tmp_path / "out") == []  # strays of failed attempts were deleted


def test_a_two_phase_commit_sink_is_exactly_once_through_many_failures(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from two_phase_commit_sink import FilePerTransactionSink
    finally:
        sys.path.remove(str(EXAMPLES))
    run = "two-phase-commit"
    FAILURES[run] = 0
    env, counts = running_count_job(tmp_path, run, schedule(seed=11), 10_000)
    counts.add_sink(FilePerTransactionSink(str(tmp_path / "out"))).uid("txn-sink")
    env.execute("two-phase commit under failures")
    assert FAILURES[run] == NUM_FAILURES
    assert committed_lines(tmp_path / "out") == expected_lines(TOTAL)


# ------------------------------------------------------------- stop-with-savepoint, rescale


def rescaling_job(
    tmp_path: Path, parallelism: int, restore: str | None, count: int | None
) -> StreamExecutionEnvironment:
    conf = Configuration()
    if restore is not None:
        conf.set_string("execution.state-recovery.path", restore)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism)
    env.enable_checkpointing(100)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    rate = RateLimiterStrategy.per_second(4_000) if count is None else None
    src = DataGeneratorSource(lambda i: i, count, rate)
    (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
        .uid("src")
        .map(lambda i: (i % 5, 1), output_type=Types.TUPLE([Types.INT(), Types.LONG()]))
        .key_by(lambda pair: pair[0])
        .sum(1)
        .uid("counter")
        .sink_to(file_sink(tmp_path / "out", RollingPolicy.on_checkpoint_rolling_policy()))
        .uid("sink")
    )
    return env


def stop_with_savepoint(env: StreamExecutionEnvironment, tmp_path: Path) -> str:
    client = env.execute_async("rescaling")
    time.sleep(0.4)
    path = client.stop_with_savepoint(False, str(tmp_path / "savepoints")).result(timeout=30)
    client.get_job_execution_result().result(timeout=30)
    return path


def assert_complete_prefix(lines: Counter[str], keys: int) -> int:
    """Every key's counts are 1..m without gaps or repeats; returns the number of lines."""
    by_key: dict[int, list[int]] = {}
    for line, n in lines.items():
        assert n == 1, f"{line} was committed {n} times"
        k, c = (int(x) for x in line.strip("()").split(", "))
        by_key.setdefault(k, []).append(c)
    for k, cs in by_key.items():
        assert sorted(cs) == list(range(1, len(cs) + 1)), f"key {k} has gaps"
    assert set(by_key) <= set(range(keys))
    return sum(lines.values())


def test_stop_with_savepoint_commits_and_rescaled_restores_commit_exactly_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    first = stop_with_savepoint(rescaling_job(tmp_path, 1, None, None), tmp_path)
    # stopping with a savepoint committed everything written before it
    after_first = assert_complete_prefix(committed_lines(out), 5)
    assert after_first > 0
    second = stop_with_savepoint(rescaling_job(tmp_path, 3, first, None), tmp_path)
    after_second = assert_complete_prefix(committed_lines(out), 5)
    assert after_second > after_first
    # the savepoint's pending files were committed when the job stopped; restoring it
    # (at another parallelism) commits them again, idempotently
    end = after_second + 2_000
    rescaling_job(tmp_path, 2, second, end).execute("final")
    assert committed_lines(out) == expected_lines(end, 5)
    assert hidden_files(out) == []
