"""A slow sink backpressures a fast source across processes with bounded memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def slow_sink(value: Any) -> None:
    time.sleep(0.002)


def test_slow_sink_backpressures_source_with_bounded_memory(local_cluster: Any) -> None:
    cluster = local_cluster(taskmanagers=2, slots=1)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    src = DataGeneratorSource(lambda i: ("x" * 100, i), None)  # as fast as it can
    (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "fast")
        .rebalance()  # every subtask sends to both sinks: half the records cross TCP
        .add_sink(slow_sink)
        .name("slow sink")
    )
    client = env.execute_async("backpressure")
    time.sleep(3)
    pids = [s.pid for s in cluster.jm.slots.values()]
    before = {pid: rss_mb(pid) for pid in pids}
    emitted_before = source_records(cluster)
    time.sleep(4)
    after = {pid: rss_mb(pid) for pid in pids}
    emitted_after = source_records(cluster)
    client.cancel().result(timeout=30)
    # the sinks take ~2 x 500 records/s; unthrottled, the generator makes > 100,000/s
    rate = (emitted_after - emitted_before) / 4
    assert rate < 5_000, f"source not backpressured: {rate:.0f} records/s"
    for pid in pids:
        assert after[pid] - before[pid] < 40, (
            f"slot {pid} grew {before[pid]:.0f} -> {after[pid]:.0f} MB"
        )
        assert after[pid] < 400


def source_records(cluster: Any) -> int:
    total = 0
    for slot in cluster.jm.slots.values():
        for reports in slot.tasks.values():
            for r in reports:
                if r["vertex_id"] == 1:
                    total += r["records_out"]
    return total
