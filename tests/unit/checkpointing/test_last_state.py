"""``flinklet jobmanager --last-state`` without HA finds the newest completed checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

from flinklet._private.cluster.entrypoints import latest_checkpoint
from flinklet.common import Configuration
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.checkpoint_config import ExternalizedCheckpointRetention
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy


def test_latest_checkpoint_is_the_newest_retained_one(tmp_path: Path) -> None:
    conf = Configuration()
    conf.set_string("execution.checkpointing.dir", f"file://{tmp_path}")
    assert latest_checkpoint(conf) is None
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.enable_checkpointing(30)
    env.get_checkpoint_config().set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(1000))
    env.from_source(src, WatermarkStrategy.no_watermarks(), "n").key_by(
        lambda x: x % 3
    ).sum().add_sink(lambda v: None)
    client = env.execute_async("retained")
    time.sleep(0.5)
    client.cancel().result(timeout=30)
    job = client._job
    newest = job.coordinator.latest
    assert newest is not None
    found = latest_checkpoint(conf)
    assert found == newest.pointer
    (Path(found.removeprefix("file://")) / "_metadata").write_text("{corrupt")
    # a corrupt newest checkpoint is never chosen (an older one, or none, is)
    assert latest_checkpoint(conf) != found
