"""Average temperature per sensor (running average, updated with every reading).

Run it:  python examples/sensor_average.py
Readings are in Fahrenheit and converted to Celsius first, as in the book's example.
See sensor_windowed_average.py for the windowed (per second) version.
"""

from __future__ import annotations

from _sensors import SensorReading, sensor_source
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment


def to_celsius(r: SensorReading) -> SensorReading:
    return r._replace(temperature=round((r.temperature - 32) * (5.0 / 9.0), 2))


def main(count: int = 2_000) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    readings = env.from_source(sensor_source(count), WatermarkStrategy.no_watermarks(), "sensors")
    (
        readings.map(to_celsius)
        .map(lambda r: (r.id, r.temperature, 1))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1], a[2] + b[2]))
        .filter(lambda t: t[2] % 100 == 0)  # print every 100th update per sensor
        .map(lambda t: f"{t[0]}: average {t[1] / t[2]:.2f} C over {t[2]} readings")
        .print()
    )
    env.execute("sensor average")


if __name__ == "__main__":
    main()
