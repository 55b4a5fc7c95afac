"""Average temperature per sensor and second of event time (the book's first example).

Run it:  python examples/sensor_windowed_average.py

Readings (Fahrenheit, converted to Celsius first) are keyed by sensor and grouped into
1-second tumbling event-time windows. An AggregateFunction keeps a running (sum, count)
per window; a ProcessWindowFunction adds the window's bounds when it fires, i.e. once
the watermark passes the end of the window. The bounded input ends with the final
watermark, which fires the last windows, and the job finishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from _sensors import SensorReading, sensor_source, sensor_watermarks
from flinklet.common.time import Time
from flinklet.datastream import (
    AggregateFunction,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
)
from flinklet.datastream.window import TimeWindow, TumblingEventTimeWindows


def to_celsius(r: SensorReading) -> SensorReading:
    return r._replace(temperature=(r.temperature - 32) * (5.0 / 9.0))


class AverageTemperature(AggregateFunction[SensorReading, tuple[float, int], tuple[float, int]]):
    """(sum, count) of the temperatures in a window; merge() makes it usable on sessions."""

    def create_accumulator(self) -> tuple[float, int]:
        return (0.0, 0)

    def add(self, value: SensorReading, accumulator: tuple[float, int]) -> tuple[float, int]:
        return (accumulator[0] + value.temperature, accumulator[1] + 1)

    def get_result(self, accumulator: tuple[float, int]) -> tuple[float, int]:
        return accumulator

    def merge(self, a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
        return (a[0] + b[0], a[1] + b[1])


class FormatWindow(ProcessWindowFunction[tuple[float, int], str, str, TimeWindow]):
    """Gets the one pre-aggregated (sum, count) of a window and reports its average."""

    def process(
        self,
        key: str,
        context: ProcessWindowFunction.Context,
        elements: Iterable[tuple[float, int]],
    ) -> Iterable[str]:
        total, count = next(iter(elements))
        start = datetime.fromtimestamp(context.window().start / 1000, UTC)
        yield f"{key} {start:%H:%M:%S}: avg {total / count:.2f} C ({count} readings)"


def main(count: int = 500, num_sensors: int = 5) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    readings = env.from_source(
        sensor_source(count, num_sensors), sensor_watermarks(5_000), "sensors"
    )
    (
        readings.map(to_celsius)
        .key_by(lambda r: r.id)
        .window(TumblingEventTimeWindows.of(Time.seconds(1)))
        .aggregate(AverageTemperature(), window_function=FormatWindow())
        .print()
    )
    env.execute("sensor windowed average")


if __name__ == "__main__":
    main()
