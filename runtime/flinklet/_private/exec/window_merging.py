"""Which session window keeps its contents where: Flink's ``MergingWindowSet``.

When windows of a merging assigner (sessions) merge, their contents are folded into the
state of one of them, the *state window*, instead of being moved to a namespace named
after the new, larger window. The set maps every live window of the current key to its
state window; it lives in keyed state (``merging-window-set``) so that it is checkpointed
and rescaled with the window contents it points to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flinklet.datastream.window import MergingWindowAssigner
from flinklet.errors import StateError

MERGING_WINDOW_SET = "merging-window-set"

MergeFunction = Callable[[Any, list[Any], Any, list[Any]], None]
"""``(merge_result, merged_windows, state_window_of_result, merged_state_windows)``."""


class _Gather(MergingWindowAssigner.MergeCallback):
    __slots__ = ("results",)

    def __init__(self) -> None:
        self.results: dict[Any, list[Any]] = {}

    def merge(self, to_be_merged: Iterable[Any], merge_result: Any) -> None:
        self.results[merge_result] = list(to_be_merged)


class MergingWindowSet:
    """The window -> state window mapping of the current key.

    Built from the keyed ``ValueState`` (``state``) for one record or timer; call
    ``persist()`` afterwards to write changes back.
    """

    __slots__ = ("_assigner", "_dirty", "_state", "mapping")

    def __init__(self, assigner: MergingWindowAssigner[Any, Any], state: Any) -> None:
        self._assigner = assigner
        self._state = state
        stored = state.value()
        self.mapping: dict[Any, Any] = dict(stored) if stored else {}
        self._dirty = False

    def persist(self) -> None:
        if self._dirty:
            self._state.update(self.mapping or None)
            self._dirty = False

    def get_state_window(self, window: Any) -> Any:
        """The namespace holding ``window``'s contents (None if the window is unknown)."""
        return self.mapping.get(window)

    def retire_window(self, window: Any) -> None:
        """Forget ``window`` (it was purged for good, or is too late to keep)."""
        if self.mapping.pop(window, None) is None:
            raise StateError(f"window {window!r} is not in the merging window set")
        self._dirty = True

    def add_window(self, new_window: Any, merge_function: MergeFunction) -> Any:
        """Add ``new_window``, merging it with the windows it overlaps; returns the window
        it ended up in. ``merge_function`` is called for every merge, before the mapping
        forgets the merged windows' state windows, so it can merge their state."""
        mapping = self.mapping
        gather = _Gather()
        self._assigner.merge_windows([*mapping, new_window], gather)
        result_window = new_window
        merged_new_window = False
        for merge_result, merged_windows in gather.results.items():
            if new_window in merged_windows:
                merged_windows.remove(new_window)
                merged_new_window = True
                result_window = merge_result
            # the merge result keeps the state window of one of the windows it absorbs
            target_state_window = mapping[merged_windows[0]]
            merged_state_windows = []
            for window in merged_windows:
                state_window = mapping.pop(window, None)
                if state_window is not None and state_window != target_state_window:
                    merged_state_windows.append(state_window)
            mapping[merge_result] = target_state_window
            self._dirty = True
            # an old window that already covers the new one: nothing to merge
            if not (len(merged_windows) == 1 and merged_windows[0] == merge_result):
                merge_function(
                    merge_result, merged_windows, target_state_window, merged_state_windows
                )
        if not gather.results or (result_window == new_window and not merged_new_window):
            mapping[result_window] = result_window
            self._dirty = True
        return result_window
