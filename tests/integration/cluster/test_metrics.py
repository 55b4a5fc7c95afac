"""Every slot process serves its tasks' metrics to Prometheus; the JobManager's REST
API reports them too."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx

from flinklet._private.cluster.protocol import free_port
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy


def test_slot_process_serves_prometheus_task_metrics(local_cluster: Any) -> None:
    cluster = local_cluster(taskmanagers=0, slots=1)
    port = free_port()
    tm = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flinklet",
            "taskmanager",
            "--tm-id=metrics-tm",
            f"-Djobmanager.rpc.port={cluster.jm.rpc_port}",
            f"-Dmetrics.reporter.prom.port={port}",
        ],
    )
    cluster.tms["metrics-tm"] = tm
    cluster.wait_for_slots(1)
    env = StreamExecutionEnvironment.get_execution_environment()
    src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(500))
    env.from_source(src, WatermarkStrategy.no_watermarks(), "gen").rebalance().map(
        lambda x: x
    ).add_sink(lambda v: None)
    client = env.execute_async("metrics")
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            text = ""
        if "numRecordsIn" in text and any(
            line.startswith("flinklet_") and "numRecordsIn" in line and not line.endswith(" 0")
            for line in text.splitlines()
        ):
            break
        time.sleep(0.5)
    assert "numRecordsIn" in text, text[:2000]
    assert "# TYPE" in text
    # the JobManager gets the same counters with the slots' heartbeats
    job = next(iter(cluster.jm.jobs.values()))
    reported: dict[str, Any] = {}
    while time.monotonic() < deadline + 10:
        snap = job.registry.snapshot()
        reported = {k: v for k, v in snap.items() if k.endswith("numRecordsIn")}
        if reported and max(reported.values()) > 0:
            break
        time.sleep(0.3)
    client.cancel().result(timeout=30)
    assert reported and max(reported.values()) > 0
