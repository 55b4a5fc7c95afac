"""A job program for the CLI/REST tests: running counts per key into an exactly-once
FileSink. Usage: rescale_job.py OUTPUT_DIR TOTAL RATE"""

from __future__ import annotations

import sys
from typing import Any

from flinklet.common import Encoder, Types
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
    RateLimiterStrategy,
    RollingPolicy,
)


class RunningCount(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield f"{ctx.get_current_key()},{n}"


def main() -> None:
    out, total, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(200)
    src = DataGeneratorSource(lambda i: i, total, RateLimiterStrategy.per_second(rate))
    (
        env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
        .uid("numbers")
        .key_by(lambda x: x % 5)
        .process(RunningCount())
        .uid("counts")
        .sink_to(
            FileSink.for_row_format(out, Encoder.simple_string_encoder())
            .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
            .build()
        )
        .uid("files")
    )
    env.execute("rescalable counts")


if __name__ == "__main__":
    main()
