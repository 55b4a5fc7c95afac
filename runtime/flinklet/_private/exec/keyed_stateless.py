"""map / flat_map / filter on a KeyedStream: the user function may use keyed state, so
the current key is set before each call (PyFlink allows keyed state in these)."""

from __future__ import annotations

from typing import Any

from flinklet._private.exec.operators import (
    FilterOperator,
    FlatMapOperator,
    MapOperator,
    Output,
    Stamps,
    Values,
)


class _KeyedSetup:
    key_selector: Any

    def _bind_backend(self: Any) -> None:
        self._set_key = self.env.keyed_backend.set_current_key


class KeyedMapOperator(_KeyedSetup, MapOperator):
    def __init__(self, fn: Any, key_selector: Any) -> None:
        super().__init__(fn)
        self.key_selector = key_selector

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._bind_backend()

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        f, ks, set_key = self._map, self.key_selector, self._set_key
        out = []
        for v in values:
            set_key(ks(v))
            out.append(f(v))
        self.output.collect_batch(out, timestamps)


class KeyedFlatMapOperator(_KeyedSetup, FlatMapOperator):
    def __init__(self, fn: Any, key_selector: Any) -> None:
        super().__init__(fn)
        self.key_selector = key_selector

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._bind_backend()

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        f, ks, set_key = self._fm, self.key_selector, self._set_key
        out: Values = []
        ts_out: list[int | None] | None = [] if timestamps is not None else None
        stamps = timestamps if timestamps is not None else [None] * len(values)
        for v, t in zip(values, stamps, strict=True):
            set_key(ks(v))
            r = f(v)
            if r is None:
                continue
            before = len(out)
            out.extend(r)
            if ts_out is not None:
                ts_out.extend([t] * (len(out) - before))
        self.output.collect_batch(out, ts_out)


class KeyedFilterOperator(_KeyedSetup, FilterOperator):
    def __init__(self, fn: Any, key_selector: Any) -> None:
        super().__init__(fn)
        self.key_selector = key_selector

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._bind_backend()

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        f, ks, set_key = self._filter, self.key_selector, self._set_key
        keep = []
        for v in values:
            set_key(ks(v))
            keep.append(bool(f(v)))
        from itertools import compress

        self.output.collect_batch(
            list(compress(values, keep)),
            None if timestamps is None else list(compress(timestamps, keep)),
        )
