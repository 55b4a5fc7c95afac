"""The job of the JobManager failover test: a bounded, rate-limited source, a keyed running
count and an exactly-once FileSink, checkpointing every 200 ms.

    python -m flinklet jobmanager ... --job-entrypoint ha_job.py --job-args OUT CKPT TOTAL RATE
"""

from __future__ import annotations

import sys
from typing import Any

from flinklet.common import Encoder, RestartStrategies, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import DataGeneratorSource, FileSink, RateLimiterStrategy

KEYS = 5


class RunningCount(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield f"{ctx.get_current_key()},{n}"


def main() -> None:
    out, checkpoints, total, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(200)
    env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoints)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 200))
    source = DataGeneratorSource(lambda i: i, total, RateLimiterStrategy.per_second(rate))
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers")
        .uid("numbers")
        .key_by(lambda x: x % KEYS)
        .process(RunningCount())
        .uid("running-count")
        .sink_to(FileSink.for_row_format(out, Encoder.simple_string_encoder()).build())
        .uid("files")
    )
    env.execute("survives a JobManager failover")


if __name__ == "__main__":
    main()
