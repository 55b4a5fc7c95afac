"""Sources, execute / execute_async / execute_and_collect, and the job client."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flinklet.common import JobStatus
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import SourceFunction, StreamExecutionEnvironment
from flinklet.datastream.connectors import (
    DataGeneratorSource,
    NumberSequenceSource,
    RateLimiterStrategy,
)
from flinklet.datastream.connectors.file_system import FileSource, StreamFormat
from flinklet.errors import ApiUsageError


def env_p(parallelism: int = 1) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


def test_number_sequence_source_splits_over_subtasks() -> None:
    env = env_p(3)
    ds = env.from_source(NumberSequenceSource(1, 100), WatermarkStrategy.no_watermarks(), "n")
    with ds.execute_and_collect() as it:
        assert sorted(it) == list(range(1, 101))


def test_bounded_data_generator_source() -> None:
    env = env_p(2)
    src = DataGeneratorSource(lambda i: f"e{i}", count=50)
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "gen")
    assert sorted(ds.execute_and_collect(limit=100)) == sorted(f"e{i}" for i in range(50))


def test_unbounded_rate_limited_generator_is_throttled() -> None:
    env = env_p(1)
    src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(200))
    assert not src.is_bounded()
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "gen")
    start = time.monotonic()
    out = ds.execute_and_collect(limit=60)  # closing the iterator cancels the job
    elapsed = time.monotonic() - start
    assert out == list(range(60))
    assert elapsed >= 0.2  # 60 records at 200/s take >= 0.3 s; allow scheduling slack


def test_text_file_source_reads_lines_of_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("three\r\nfour")
    (tmp_path / ".hidden").write_text("ignored\n")
    env = env_p(2)
    src = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path)
    ).build()
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "files")
    assert sorted(ds.execute_and_collect(limit=10)) == ["four", "one", "three", "two"]


def test_read_text_file(tmp_path: Path) -> None:
    f = tmp_path / "words.txt"
    f.write_text("to be\nor not\n")
    env = env_p()
    out = env.read_text_file(str(f)).flat_map(str.split).execute_and_collect(limit=10)
    assert out == ["to", "be", "or", "not"]


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    env = env_p()
    src = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path / "nope")
    ).build()
    env.from_source(src, WatermarkStrategy.no_watermarks(), "files").print()
    with pytest.raises(Exception, match="does not exist"):
        env.execute()


def test_add_source_with_legacy_source_function() -> None:
    class Counter(SourceFunction):
        def __init__(self) -> None:
            self.running = True

        def run(self, ctx: Any) -> None:
            for i in range(5):
                if not self.running:
                    return
                ctx.collect_with_timestamp(i, 1000 + i)

        def cancel(self) -> None:
            self.running = False

    env = env_p()
    assert env.add_source(Counter()).execute_and_collect(limit=10) == [0, 1, 2, 3, 4]


def test_execute_returns_result_with_job_id_and_runtime() -> None:
    env = env_p()
    env.from_collection([1]).print()
    result = env.execute("named")
    assert len(str(result.get_job_id())) == 32
    assert result.get_net_runtime() >= 0


def test_execute_without_sink_is_an_api_error() -> None:
    env = env_p()
    env.from_collection([1]).map(lambda x: x)
    with pytest.raises(ApiUsageError, match="No operators defined"):
        env.execute()


def test_execute_async_returns_a_job_client() -> None:
    seen: list[int] = []
    env = env_p()
    env.from_collection(range(5)).add_sink(lambda v: seen.append(v))
    client = env.execute_async("async")
    result = client.get_job_execution_result().result(timeout=30)
    assert result.get_job_id() == client.get_job_id()
    assert client.get_job_status().result() == JobStatus.FINISHED
    assert seen == [0, 1, 2, 3, 4]


def test_cancel_an_unbounded_job_through_the_client() -> None:
    env = env_p()
    src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(1000))
    env.from_source(src, WatermarkStrategy.no_watermarks(), "gen").add_sink(lambda v: None)
    client = env.execute_async("forever")
    time.sleep(0.2)
    assert client.get_job_status().result() == JobStatus.RUNNING
    client.cancel().result(timeout=10)
    assert client.get_job_status().result() == JobStatus.CANCELED
    with pytest.raises(Exception, match="cancel"):
        client.get_job_execution_result().result(timeout=10)


def test_execute_and_collect_is_an_iterator_and_context_manager() -> None:
    env = env_p(2)
    ds = env.from_collection(range(100)).map(lambda x: x * 2)
    with ds.execute_and_collect("collect") as results:
        first = next(results)
        rest = list(results)
    assert sorted([first, *rest]) == [x * 2 for x in range(100)]


def test_execute_and_collect_early_close_cancels_the_job() -> None:
    env = env_p()
    src = DataGeneratorSource(lambda i: i, None)
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "gen")
    before = threading.active_count()
    with ds.execute_and_collect() as results:
        assert next(results) == 0
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
