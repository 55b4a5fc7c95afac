"""Job programs and polling helpers shared by the REST API tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_HEADER = """
import sys
from flinklet.common import RestartStrategies
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
env = StreamExecutionEnvironment.get_execution_environment()
"""

PROGRAMS = {
    # runs until cancelled or stopped; checkpoints every 50 ms
    "unbounded.py": _HEADER
    + """
env.enable_checkpointing(50)
rate = float(sys.argv[1]) if len(sys.argv) > 1 else 2000.0
src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(rate))
(env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("numbers")
    .map(lambda x: x * 2).uid("double")
    .key_by(lambda x: x % 4).reduce(lambda a, b: a + b).uid("sum")
    .add_sink(lambda v: None))
env.execute("unbounded")
""",
    # finishes by itself
    "bounded.py": _HEADER
    + """
src = DataGeneratorSource(lambda i: i, 500)
(env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
    .key_by(lambda x: x % 2).map(lambda x: x).add_sink(lambda v: None))
env.execute("bounded")
""",
    # fails on its first record, no restarts
    "failing.py": _HEADER
    + """
def explode(x):
    raise ValueError("boom at " + str(x))
env.set_restart_strategy(RestartStrategies.no_restart())
src = DataGeneratorSource(lambda i: i, 100)
env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").map(explode).name(
    "Exploding Map").add_sink(lambda v: None)
env.execute("failing")
""",
    # four fast sources feed one task: the sources are back-pressured
    "backpressured.py": _HEADER
    + """
src = DataGeneratorSource(lambda i: i, None)
(env.from_source(src, WatermarkStrategy.no_watermarks(), "fast").set_parallelism(4)
    .key_by(lambda x: x % 2).map(lambda x: x + 1).set_parallelism(1)
    .add_sink(lambda v: None))
env.execute("backpressured")
""",
    "no_execute.py": "print('this program builds no job')\n",
    "raises.py": "raise RuntimeError('cannot read the input topic')\n",
}


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
