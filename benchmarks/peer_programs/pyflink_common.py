"""What the PyFlink programs share: the environment and the checksumming sink.

PyFlink's DataStream API has no Python sink function, and ``execute_and_collect`` pulls
results through py4j one by one (about 2,000 records/s here). The programs therefore end
each job with ``Tally``, a ``FilterFunction`` that counts and sums every record, drops it
and writes its totals to a file when the job closes it: one Python call per record, as
Flinklet's sink. Jobs run at parallelism 1 in PyFlink's thread mode (Python inside the
JVM through pemja), its faster mode for Python functions.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import FilterFunction, RuntimeContext

__all__ = ["Tally", "environment", "execute"]


class Tally(FilterFunction):
    """Counts records and sums ``value(record)``; keeps none of them."""

    def __init__(self, path: str, value: Callable[[Any], int]) -> None:
        self.path = path
        self.value = value

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = 0
        self.total = 0

    def filter(self, record: Any) -> bool:
        self.count += 1
        self.total += self.value(record)
        return False

    def close(self) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump([self.count, self.total], f)


def environment() -> StreamExecutionEnvironment:
    conf = Configuration()
    conf.set_string("python.execution-mode", "thread")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    env.set_python_executable(sys.executable)
    return env


def execute(
    build: Callable[[StreamExecutionEnvironment, Callable[..., Tally]], None],
) -> tuple[int, int]:
    """Build the job with ``build(env, tally)`` (``tally(value)`` makes the sink), run it,
    and return the sink's (count, checksum)."""
    fd, path = tempfile.mkstemp(prefix="flinklet-bench-pyflink-", suffix=".json")
    os.close(fd)
    try:
        env = environment()
        build(env, lambda value: Tally(path, value))
        env.execute("flinklet benchmark peer")
        with open(path, encoding="utf-8") as f:
            count, total = json.load(f)
        return int(count), int(total)
    finally:
        os.unlink(path)
