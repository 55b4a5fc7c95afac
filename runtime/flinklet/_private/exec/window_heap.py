"""The window operator's path for its most common form, on the hashmap state backend.

A window with the assigner's own trigger (``EventTimeTrigger`` / ``ProcessingTimeTrigger``),
no evictor and no merging keeps its contents in one heap state (reducing, aggregating or
list). This path reads and writes that state's table (``namespace -> key -> contents``)
directly instead of through the state handle, and does per window what the general path
does per record:

- the windows of a record come from the assigner's span cache (event-time tumbling and
  sliding windows: the same windows for a whole range of timestamps), or, for other
  assigners, from ``assign_windows`` compared with the previous record's;
- what a window needs (its contents dict, lateness, the timers to register) is derived
  once per window and batch (the watermark does not move within a batch);
- the trigger and cleanup timers are registered when a key's contents for a window are
  created. While contents exist their timers are pending: both are dropped together at
  cleanup, and the trigger's timer fires only when the watermark has passed the window's
  end, after which elements take the late-firing branch, which registers no trigger timer.

The results are the general path's, record for record: the same reduce/add calls in the
same order, late firings per element, late elements to the side output or counted in
``numLateRecordsDropped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from flinklet._private.network.elements import MAX_WATERMARK
from flinklet._private.state.heap import (
    HeapAggregatingState,
    HeapListState,
    HeapReducingState,
    StateTable,
)
from flinklet._private.windows.assigners import window_span

if TYPE_CHECKING:
    from flinklet._private.exec.operators import ResultCollector, Values
    from flinklet._private.exec.windowing import WindowOperator

__all__ = ["HeapWindowPath"]

_MISSING: Final[Any] = object()

REDUCE, AGGREGATE, LIST = "reduce", "aggregate", "list"

# (window, its contents dict, fires per element (late firing), timer times to register)
Entry = tuple[Any, dict[Any, Any], bool, tuple[int, ...]]

_KINDS: dict[type[Any], str] = {
    HeapReducingState: REDUCE,
    HeapAggregatingState: AGGREGATE,
    HeapListState: LIST,
}


class HeapWindowPath:
    """Records and timers of one ``WindowOperator`` whose contents are a heap state."""

    __slots__ = (
        "_add",
        "_create",
        "_get_result",
        "_kind",
        "_op",
        "_reduce",
        "_span",
        "_state",
        "_timer_times",
        "_timer_window",
    )

    def __init__(self, op: WindowOperator, state: Any, kind: str) -> None:
        self._op = op
        self._state = state
        self._kind = kind
        self._reduce = op.reduce_call
        agg = op.aggregate_function
        self._create = None if agg is None else agg.create_accumulator
        self._add = None if agg is None else agg.add
        self._get_result = None if agg is None else agg.get_result
        self._span = window_span(op.assigner)
        self._timer_window: Any = None  # the window of the last timer, its end and cleanup
        self._timer_times: tuple[int, int] = (0, 0)

    @staticmethod
    def of(op: WindowOperator, state: Any) -> HeapWindowPath | None:
        """The path for ``op`` if its contents ``state`` is a plain heap state, else None."""
        kind = _KINDS.get(type(state))
        return None if kind is None else HeapWindowPath(op, state, kind)

    # -- records -------------------------------------------------------------------------

    def process_batch(
        self, values: Values, stamps: Iterable[int | None], res: ResultCollector
    ) -> None:
        op = self._op
        # the contents state's table: the same dict for the backend's lifetime (restore fills
        # it in place), but its namespace dicts are looked up per batch, never kept longer
        table: StateTable = self._state.table
        ks, set_key = op.key_selector, op.backend.set_current_key
        timers = op.timers
        event_time, lateness = op.event_time, op.lateness
        register = (
            timers.register_event_time_timer
            if event_time
            else timers.register_processing_time_timer
        )
        watermark = timers.current_watermark
        kind, reduce, add, create = self._kind, self._reduce, self._add, self._create
        span = self._span
        assign, actx = op.assigner.assign_windows, op.trigger_context
        entries: list[Entry] = []
        # the contents of the only window of ``entries`` if it does not fire per element
        # (tumbling windows): a key already in it needs one dict read and one write
        single: dict[Any, Any] | None = None
        lo = hi = 0  # the timestamps for which ``entries`` hold (span assigners)
        last_windows: Any = None
        for value, ts in zip(values, stamps, strict=False):
            key = ks(value)
            if span is not None:
                if ts is None:
                    raise op.missing_timestamp()
                if ts < lo or ts >= hi:
                    windows, lo, hi = span(ts)
                    entries = self._entries(windows, table, watermark)
                    single = entries[0][1] if len(entries) == 1 and not entries[0][2] else None
            else:
                set_key(key)  # assigners may use keyed state
                if ts is None and event_time:
                    raise op.missing_timestamp()
                windows = assign(value, ts, actx)
                if windows != last_windows:
                    last_windows = windows
                    entries = self._entries(windows, table, watermark)
                    single = entries[0][1] if len(entries) == 1 and not entries[0][2] else None
            if single is not None and value is not None:
                stored = single.get(key, _MISSING)
                if stored is not _MISSING:
                    if kind is REDUCE:
                        single[key] = reduce(stored, value)  # type: ignore[misc]
                    elif kind is AGGREGATE:
                        single[key] = add(value, stored)  # type: ignore[misc]
                    else:
                        stored.append(value)
                    continue
            if not entries:  # no window, or all of them late
                if event_time and ts + lateness <= watermark:  # type: ignore[operator]
                    op.late(value, ts, res)
                continue
            for window, contents, fires, times in entries:
                stored = contents.get(key, _MISSING)
                if value is None:
                    self._add_none(key, contents)
                    stored = _MISSING  # the general path registers the timers again
                elif kind is REDUCE:
                    contents[key] = value if stored is _MISSING else reduce(stored, value)  # type: ignore[misc]
                elif kind is AGGREGATE:
                    contents[key] = add(value, create() if stored is _MISSING else stored)  # type: ignore[misc]
                elif stored is _MISSING:
                    contents[key] = [value]
                else:
                    stored.append(value)
                if stored is _MISSING:
                    set_key(key)
                    for time in times:
                        register(window, time)
                if fires:
                    stored = contents.get(key, _MISSING)
                    if stored is not _MISSING:
                        set_key(key)
                        self._fire(key, window, window.max_timestamp(), stored, res)

    def _entries(self, windows: Iterable[Any], table: StateTable, watermark: int) -> list[Entry]:
        """What the records of a batch need of each of ``windows``; late windows left out."""
        event_time, lateness = self._op.event_time, self._op.lateness
        entries: list[Entry] = []
        for window in windows:
            end: int = window.max_timestamp()
            fires = False
            cleanup = end
            if event_time:
                cleanup = end + lateness
                if cleanup >= MAX_WATERMARK:
                    cleanup = MAX_WATERMARK
                if cleanup <= watermark:
                    continue  # late window: its state is (being) dropped
                fires = end <= watermark  # a late firing within the allowed lateness
            times: tuple[int, ...] = () if fires else (end,)
            if cleanup < MAX_WATERMARK and cleanup != end:
                times += (cleanup,)
            contents = table.get(window)
            if contents is None:
                contents = table[window] = {}
            entries.append((window, contents, fires, times))
        return entries

    def _add_none(self, key: Any, contents: dict[Any, Any]) -> None:
        """``state.add(None)``: a list state refuses it, the others drop the contents."""
        if self._kind is LIST:
            self._op.backend.set_current_key(key)
            self._state.add(None)  # raises StateError, as the general path does
        contents.pop(key, None)

    def _fire(self, key: Any, window: Any, end: int, stored: Any, res: ResultCollector) -> None:
        """Evaluate the window function on ``stored`` contents of ``key`` (the current key)."""
        kind = self._kind
        if kind is LIST:
            if not stored:
                return
            inputs: Iterable[Any] = list(stored)
        else:
            if kind is AGGREGATE:
                stored = self._get_result(stored)  # type: ignore[misc]
            if stored is None:
                return
            inputs = (stored,)
        op = self._op
        ctx = op.window_context
        ctx.set_window(window)
        res.add(op.call(key, window, ctx, inputs), end)

    # -- timers --------------------------------------------------------------------------

    def on_timer(
        self, ts: int, key: Any, window: Any, event_time: bool, res: ResultCollector
    ) -> None:
        """A timer of ``key`` (the current key): the trigger's (fire) and/or the cleanup."""
        op = self._op
        if event_time != op.event_time:
            return  # the built-in triggers ignore the other time domain
        if window is self._timer_window:  # a watermark fires the keys of a window in a row
            end, cleanup = self._timer_times
        else:
            end = cleanup = window.max_timestamp()
            if event_time:
                cleanup = end + op.lateness
                if cleanup >= MAX_WATERMARK:
                    cleanup = MAX_WATERMARK
            self._timer_window, self._timer_times = window, (end, cleanup)
        table: StateTable = self._state.table
        contents = table.get(window)
        if contents is None:
            stored = _MISSING
        elif cleanup == ts:
            stored = contents.pop(key, _MISSING)
            if not contents:
                del table[window]
        else:
            stored = contents.get(key, _MISSING)
        if stored is not _MISSING and (ts == end or not event_time):  # the trigger fires
            self._fire(key, window, end, stored, res)
        if ts == cleanup:
            # what the function's clear() drops. The trigger's clear() would delete its
            # timer at ``end``: that timer has fired (it is this one, or an earlier one) or
            # was never set (late firings set none).
            clear = op.clear_function
            if clear is not None:
                op.window_context.set_window(window)
                clear(op.window_context)
