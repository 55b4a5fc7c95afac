"""Windows, window assigners, triggers and evictors (PyFlink's ``pyflink.datastream.window``).

A window operator groups the records of each key into windows (``TimeWindow``,
``GlobalWindow``, ...) chosen by a ``WindowAssigner``; a ``Trigger`` decides when a window
is evaluated (``FIRE``) and when its contents are dropped (``PURGE``); an optional
``Evictor`` removes elements before or after the window function runs. The semantics are
Flink's, see ``docs/windows.md``::

    from flinklet.common.time import Time
    from flinklet.datastream.window import TumblingEventTimeWindows

    (readings.key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .reduce(lambda a, b: a if a[2] >= b[2] else b))

Windows are immutable values: they name the state of a window in the keyed state backend
(so they are hashable and picklable). ``TimeWindow`` is a ``tuple`` subclass so that the
per-record dictionary lookups hash it in C.

The classes are defined in ``flinklet._private.windows`` (windows, triggers, assigners,
evictors) and say this module is theirs (``__module__``), so that pickles name it.
"""

from __future__ import annotations

from flinklet._private.windows.assigners import (
    CountSlidingWindowAssigner,
    CountTumblingWindowAssigner,
    DynamicEventTimeSessionWindows,
    DynamicProcessingTimeSessionWindows,
    EventTimeSessionWindows,
    GlobalWindows,
    MergingWindowAssigner,
    ProcessingTimeSessionWindows,
    SessionWindowTimeGapExtractor,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowAssigner,
)
from flinklet._private.windows.evictors import (
    CountEvictor,
    DeltaEvictor,
    Evictor,
    TimeEvictor,
)
from flinklet._private.windows.triggers import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountTrigger,
    EventTimeTrigger,
    NeverTrigger,
    ProcessingTimeTrigger,
    PurgingTrigger,
    Trigger,
    TriggerResult,
)
from flinklet._private.windows.windows import (
    CountWindow,
    GlobalWindow,
    TimestampedValue,
    TimeWindow,
    Window,
)

__all__ = [
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountEvictor",
    "CountSlidingWindowAssigner",
    "CountTrigger",
    "CountTumblingWindowAssigner",
    "CountWindow",
    "DeltaEvictor",
    "DynamicEventTimeSessionWindows",
    "DynamicProcessingTimeSessionWindows",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "Evictor",
    "GlobalWindow",
    "GlobalWindows",
    "MergingWindowAssigner",
    "NeverTrigger",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "SessionWindowTimeGapExtractor",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeEvictor",
    "TimeWindow",
    "TimestampedValue",
    "Trigger",
    "TriggerResult",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "Window",
    "WindowAssigner",
]
