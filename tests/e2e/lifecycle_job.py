"""The job of the local end-to-end lifecycle test (shipped to the pods in a ConfigMap, like
examples/k8s/wordcount.yaml ships its job): an endless, rate-limited stream of numbers, a
running count per key and an exactly-once FileSink.

Every committed line is ``key,n,i``: the n-th record of ``key`` is record ``i`` of the
source. Exactly once means: no ``i`` twice, and per key the ``n`` are exactly 1..m.

    flinklet jobmanager --job-entrypoint lifecycle_job.py --job-args OUT RATE
"""

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
from flinklet.datastream.connectors import DataGeneratorSource, FileSink, RateLimiterStrategy

KEYS = 7


class RunningCount(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield f"{ctx.get_current_key()},{n},{value}"


def main() -> None:
    out, rate = sys.argv[1], int(sys.argv[2])
    env = StreamExecutionEnvironment.get_execution_environment()
    source = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(rate))
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers")
        .uid("numbers")
        .key_by(lambda i: i % KEYS)
        .process(RunningCount())
        .uid("running-count")
        .sink_to(FileSink.for_row_format(out, Encoder.simple_string_encoder()).build())
        .uid("files")
    )
    env.execute("e2e lifecycle")


if __name__ == "__main__":
    main()
