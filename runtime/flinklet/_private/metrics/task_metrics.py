"""Flink's task metrics, read from a running task's counters.

The per-record path only bumps plain integers on the task (``num_records_in``, the
writers' ``num_records_out``, ``backpressured_steps``) and the watermark valves keep the
last watermark they emitted. :func:`register_task_metrics` turns those into Flink's task
metric names, as gauges evaluated when someone reads them:

=============================  =========================================================
numRecordsIn / numRecordsOut   records read from the input gates / written to outputs
numRecordsInPerSecond (Out)    their rates over the last minute of reads
currentInputWatermark          min watermark over the inputs (``currentInput1Watermark``
                               and ``currentInput2Watermark`` for two-input tasks)
backPressuredTimeMsPerSecond   ms per second the task could not run because an output
busyTimeMsPerSecond            was full / did work / had nothing to do, sampled every
idleTimeMsPerSecond            50 ms over the last second
isBackPressured                whether the latest sample was back-pressured
=============================  =========================================================

Back pressure is sampled, as Flink's web UI once did by sampling stack traces: a
sampling thread compares the task's counters every :data:`SAMPLE_INTERVAL_S` and
classifies the interval (:func:`classify`). It samples a task only while its metrics are
being read (a scrape in the last :data:`IDLE_AFTER_S`), and stops when nobody reads.
The REST API's back-pressure endpoint uses the same classification over its own window.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from flinklet._private.metrics import MetricRegistry, TaskMetricGroup

__all__ = [
    "BACKPRESSURED",
    "BUSY",
    "IDLE",
    "IDLE_AFTER_S",
    "SAMPLE_INTERVAL_S",
    "TaskCounters",
    "classify",
    "operator_scope",
    "register_task_metrics",
    "sample_counters",
    "task_metric_group",
    "task_scope",
]

BACKPRESSURED, BUSY, IDLE = "backpressured", "busy", "idle"

#: Seconds between two back-pressure samples of a task.
SAMPLE_INTERVAL_S = 0.05
#: Samples kept per task (one second's worth).
WINDOW_SAMPLES = 20
#: A task nobody read metrics of for this long is no longer sampled.
IDLE_AFTER_S = 120.0
#: Rates (``...PerSecond``) are averaged over this many seconds of reads, as Flink's meters.
RATE_SPAN_S = 60.0

TaskCounters = tuple[int, int, int]  # (backpressured steps, records in, records out)


class _Writer(Protocol):
    @property
    def num_records_out(self) -> int: ...


class _Valve(Protocol):
    @property
    def last_output(self) -> int: ...


class _CountingTask(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def num_records_in(self) -> int: ...

    @property
    def backpressured_steps(self) -> int: ...

    @property
    def writers(self) -> Sequence[_Writer]: ...


class _Task(_CountingTask, Protocol):
    @property
    def vertex_id(self) -> int: ...

    @property
    def subtask_index(self) -> int: ...

    @property
    def valves(self) -> Sequence[_Valve]: ...


def task_scope(job_id: str, vertex_id: int, subtask_index: int) -> str:
    """The metric scope of one subtask: ``<job-id>.task.<vertex-id>.<subtask>``."""
    return f"{job_id}.task.{vertex_id}.{subtask_index}"


def operator_scope(job_id: str, operator_name: str, subtask_index: int) -> str:
    """The metric scope the executor gives an operator's ``RuntimeContext`` metric group:
    ``<job-id>.<operator name>.<subtask>``."""
    return f"{job_id}.{operator_name}.{subtask_index}"


def task_metric_group(registry: MetricRegistry, job_id: str, task: _Task) -> TaskMetricGroup:
    """The group :func:`register_task_metrics` should register ``task``'s metrics in."""
    return TaskMetricGroup(registry, task_scope(job_id, task.vertex_id, task.subtask_index))


def sample_counters(task: _CountingTask) -> TaskCounters:
    """The counters back-pressure classification compares between two samples."""
    out = 0
    for w in task.writers:
        out += w.num_records_out
    return task.backpressured_steps, task.num_records_in, out


def classify(
    before: TaskCounters, after: TaskCounters, running: bool = True, previous: str = IDLE
) -> str:
    """What a task did between two samples: back-pressured if it was refused work
    because an output was full, busy if it moved records; if nothing changed, it is
    still back-pressured when that is what it last was (it waits for its turn to retry:
    Flinklet's tasks share a thread and a refused task is retried next round), and
    idle otherwise."""
    if not running:
        return IDLE
    if after[0] > before[0]:
        return BACKPRESSURED
    if after[1] > before[1] or after[2] > before[2]:
        return BUSY
    return BACKPRESSURED if previous == BACKPRESSURED else IDLE


class _History:
    """The latest samples of one task."""

    def __init__(self, counters: TaskCounters) -> None:
        self.last = counters
        self.kinds: deque[str] = deque(maxlen=WINDOW_SAMPLES)
        self.last_read = float("-inf")  # not sampled until someone reads its metrics

    def ratio(self, kind: str) -> float:
        kinds = self.kinds
        return kinds.count(kind) / len(kinds) if kinds else 0.0


class _Sampler:
    """One daemon thread sampling every tracked task whose metrics are being read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: weakref.WeakKeyDictionary[_CountingTask, _History] = (
            weakref.WeakKeyDictionary()
        )
        self._thread: threading.Thread | None = None

    def track(self, task: _CountingTask) -> _History:
        with self._lock:
            history = self._tasks.get(task)
            if history is None:
                history = self._tasks[task] = _History(sample_counters(task))
            return history

    def touch(self, history: _History) -> None:
        """A metric of the task was read: keep (or start) sampling it."""
        history.last_read = time.monotonic()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flinklet-backpressure-sampler", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(SAMPLE_INTERVAL_S)
            now = time.monotonic()
            with self._lock:
                active = [
                    (task, h) for task, h in self._tasks.items() if now - h.last_read < IDLE_AFTER_S
                ]
                if not active:
                    self._thread = None
                    return
            for task, h in active:
                counters = sample_counters(task)
                previous = h.kinds[-1] if h.kinds else IDLE
                h.kinds.append(classify(h.last, counters, task.state == "RUNNING", previous))
                h.last = counters


_sampler = _Sampler()


class _Rate:
    """Per-second rate of a growing count over the last :data:`RATE_SPAN_S` of reads."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._marks: deque[tuple[float, int]] = deque([(time.monotonic(), read())])

    def __call__(self) -> float:
        now, value = time.monotonic(), self._read()
        marks = self._marks
        marks.append((now, value))
        while len(marks) > 2 and now - marks[1][0] >= RATE_SPAN_S:
            marks.popleft()
        t0, v0 = marks[0]
        return (value - v0) / (now - t0) if now > t0 else 0.0


def register_task_metrics(task: _Task, group: TaskMetricGroup) -> None:
    """Register Flink's task metrics of ``task`` in ``group`` (see the module docstring).

    Call it once per deployed task, with :func:`task_metric_group`; calling it again for
    the same task re-registers the same gauges.
    """
    history = _sampler.track(task)

    def records_out() -> int:
        return sample_counters(task)[2]

    def records_in() -> int:
        return task.num_records_in

    def ms_per_second(kind: str) -> Callable[[], float]:
        def read() -> float:
            _sampler.touch(history)
            return round(history.ratio(kind) * 1000.0, 3)

        return read

    def is_backpressured() -> bool:
        _sampler.touch(history)
        return bool(history.kinds) and history.kinds[-1] == BACKPRESSURED

    group.gauge("numRecordsIn", records_in)
    group.gauge("numRecordsOut", records_out)
    group.gauge("numRecordsInPerSecond", _Rate(records_in))
    group.gauge("numRecordsOutPerSecond", _Rate(records_out))
    group.gauge("backPressuredTimeMsPerSecond", ms_per_second(BACKPRESSURED))
    group.gauge("busyTimeMsPerSecond", ms_per_second(BUSY))
    group.gauge("idleTimeMsPerSecond", ms_per_second(IDLE))
    group.gauge("isBackPressured", is_backpressured)
    valves = task.valves
    if valves:
        group.gauge("currentInputWatermark", lambda: min(v.last_output for v in valves))
        if len(valves) > 1:
            for i, valve in enumerate(valves, start=1):
                group.gauge(f"currentInput{i}Watermark", _watermark_of(valve))


def _watermark_of(valve: _Valve) -> Callable[[], int]:
    return lambda: valve.last_output
