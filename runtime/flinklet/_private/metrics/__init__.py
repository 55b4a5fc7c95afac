"""Metric primitives and per-task metric groups.

Counters, gauges, meters and distributions (histograms), grouped by scope
(``<job>.<task>.<subtask>.<operator>``). The registry is a plain dictionary so the
per-record path only ever increments an integer; exporters (REST, Prometheus) read
the registry.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Any

from flinklet.datastream.functions import MetricGroup


class Counter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.count -= n

    def get_count(self) -> int:
        return self.count


class Meter:
    """Events per second over a sliding time span."""

    def __init__(self, time_span_in_seconds: int = 60) -> None:
        self.span = time_span_in_seconds
        self.count = 0
        self._marks: list[tuple[float, int]] = [(time.monotonic(), 0)]

    def mark_event(self, n: int = 1) -> None:
        self.count += n

    def get_count(self) -> int:
        return self.count

    def get_rate(self) -> float:
        now = time.monotonic()
        self._marks.append((now, self.count))
        while len(self._marks) > 2 and now - self._marks[1][0] > self.span:
            self._marks.pop(0)
        t0, c0 = self._marks[0]
        return (self.count - c0) / (now - t0) if now > t0 else 0.0


class Distribution:
    """A histogram over a bounded reservoir of the latest values."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.values: list[float] = []
        self.count = 0

    def update(self, value: float) -> None:
        self.count += 1
        if len(self.values) >= self.size:
            self.values.pop(0)
        self.values.append(value)

    def quantile(self, q: float) -> float:
        if not self.values:
            return 0.0
        ordered = sorted(self.values)
        idx = min(len(ordered) - 1, bisect.bisect_left(range(len(ordered)), q * len(ordered)))
        return ordered[idx]


class Gauge:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def get_value(self) -> Any:
        return self.fn()


class MetricRegistry:
    """All metrics of a process, by fully qualified name."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}

    def register(self, name: str, metric: Any) -> Any:
        self.metrics[name] = metric
        return metric

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, m in list(self.metrics.items()):
            if isinstance(m, Counter):
                out[name] = m.count
            elif isinstance(m, Meter):
                out[name] = m.get_rate()
            elif isinstance(m, Gauge):
                try:
                    out[name] = m.get_value()
                except Exception as exc:  # a user gauge must not break metric reporting
                    out[name] = f"error: {exc}"
            elif isinstance(m, Distribution):
                out[name] = {"count": m.count, "p50": m.quantile(0.5), "p99": m.quantile(0.99)}
        return out


class TaskMetricGroup(MetricGroup):
    def __init__(self, registry: MetricRegistry, scope: str) -> None:
        self.registry = registry
        self.scope = scope

    def _name(self, name: str) -> str:
        return f"{self.scope}.{name}"

    def counter(self, name: str) -> Counter:
        existing = self.registry.metrics.get(self._name(name))
        if isinstance(existing, Counter):
            return existing
        return self.registry.register(self._name(name), Counter())  # type: ignore[no-any-return]

    def gauge(self, name: str, obj: Any) -> None:
        self.registry.register(self._name(name), Gauge(obj if callable(obj) else lambda: obj))

    def meter(self, name: str, time_span_in_seconds: int = 60) -> Meter:
        return self.registry.register(  # type: ignore[no-any-return]
            self._name(name), Meter(time_span_in_seconds)
        )

    def distribution(self, name: str) -> Distribution:
        return self.registry.register(self._name(name), Distribution())  # type: ignore[no-any-return]

    def add_group(self, name: str, extra: str | None = None) -> TaskMetricGroup:
        sub = name if extra is None else f"{name}.{extra}"
        return TaskMetricGroup(self.registry, f"{self.scope}.{sub}")
