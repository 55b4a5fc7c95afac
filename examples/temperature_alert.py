"""Alert when a sensor's temperature rises continuously for one second (processing time).

Run it:  python examples/temperature_alert.py
A KeyedProcessFunction keeps the last temperature and a pending timer per sensor: a rise
with no timer registers one a second ahead, a drop deletes it, and a timer that fires
means the temperature rose for the whole second.
"""

from __future__ import annotations

from typing import Any

from _sensors import SensorReading, sensor_source
from flinklet.common import Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)

INTERVAL_MS = 1_000


class TempIncreaseAlert(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.last_temp = runtime_context.get_state(ValueStateDescriptor("lastTemp", Types.DOUBLE()))
        self.current_timer = runtime_context.get_state(ValueStateDescriptor("timer", Types.LONG()))

    def process_element(self, value: SensorReading, ctx: Any) -> Any:
        previous = self.last_temp.value()
        self.last_temp.update(value.temperature)
        timer = self.current_timer.value()
        timers = ctx.timer_service()
        if previous is None or value.temperature < previous:
            if timer is not None:
                timers.delete_processing_time_timer(timer)
                self.current_timer.clear()
        elif value.temperature > previous and timer is None:
            fire_at = timers.current_processing_time() + INTERVAL_MS
            timers.register_processing_time_timer(fire_at)
            self.current_timer.update(fire_at)
        return None

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        self.current_timer.clear()
        yield f"Temperature of sensor '{ctx.get_current_key()}' rose for 1 second"


def main(seconds: float = 4.0) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    per_second = 50.0  # 10 sensors, 5 readings per sensor per second
    source = sensor_source(int(seconds * per_second), per_second=per_second)
    readings = env.from_source(source, WatermarkStrategy.no_watermarks(), "sensors")
    readings.key_by(lambda r: r.id).process(TempIncreaseAlert()).print()
    env.execute("temperature alert")


if __name__ == "__main__":
    main()
