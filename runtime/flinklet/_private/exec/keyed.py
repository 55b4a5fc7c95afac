"""Rolling aggregations on a keyed stream: ``reduce``, ``sum``, ``min``, ``max``,
``min_by`` and ``max_by``.

Each keeps one value per key in the keyed state backend (so it is checkpointed and
rescaled with everything else) and emits the updated value for every record, as Flink's
streaming mode does. In BATCH mode it emits only the final value per key at end of input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flinklet._private.exec.operators import (
    Output,
    Stamps,
    StreamOperator,
    Values,
    copy_function,
    user_method,
)
from flinklet.errors import ApiUsageError

_MISSING = object()


class KeyedReduceOperator(StreamOperator):
    STATE_NAME = "_reduce_value"

    def __init__(self, fn: Any, key_selector: Callable[[Any], Any]) -> None:
        self.user_function = copy_function(fn)
        self._reduce = user_method(self.user_function, "reduce", "reduce", "ReduceFunction")
        self.key_selector = key_selector
        agg = self.user_function
        self._agg = agg if isinstance(agg, FieldAggregation) else None

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        backend = env.keyed_backend
        backend.register_internal_value_state(self.STATE_NAME)
        self.table = backend.value_table(self.STATE_NAME)
        self.backend = backend
        self._batch = env.batch_mode

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        table, ks, reduce = self.table, self.key_selector, self._reduce
        agg = self._agg
        if agg is not None and values:
            # built-in aggregations: one specialised function for a batch of one type
            kinds = set(map(type, values))
            if len(kinds) == 1:
                reduce = agg.specialised(values[0])
        get = table.get
        missing = _MISSING
        if self._batch:
            for v in values:
                k = ks(v)
                old = get(k, missing)
                table[k] = v if old is missing else reduce(old, v)
            return
        out: list[Any] = []
        append = out.append
        for v in values:
            k = ks(v)
            old = get(k, missing)
            new = v if old is missing else reduce(old, v)
            table[k] = new
            append(new)
        self.output.collect_batch(out, timestamps)

    def end_input(self) -> None:
        if self._batch and len(self.table):
            self.output.collect_batch(list(self.table.values()), None)


# ------------------------------------------------------------- built-in aggregations


class FieldAggregation:
    """``sum``/``min``/``max``/``min_by``/``max_by`` over one field. The per-record function
    is specialised for the record type on first use (tuples, named tuples, lists, Rows,
    dicts or plain numbers), so the common case costs one call and one comparison."""

    def __init__(self, position: int | str, kind: str) -> None:
        self.position = position
        self.kind = kind
        self._type: type | None = None
        self._fn: Callable[[Any, Any], Any] = self._first

    def __call__(self, acc: Any, value: Any) -> Any:
        if type(acc) is not self._type:
            self._type = type(acc)
            self._fn = self._specialise(acc)
        return self._fn(acc, value)

    def _first(self, acc: Any, value: Any) -> Any:  # pragma: no cover - replaced on use
        return self(acc, value)

    def specialised(self, sample: Any) -> Callable[[Any, Any], Any]:
        """The per-record function for records of ``type(sample)`` (cached)."""
        cache: dict[type, Callable[[Any, Any], Any]] = self.__dict__.setdefault("_cache", {})
        kind = type(sample)
        fn = cache.get(kind)
        if fn is None:
            fn = cache[kind] = self._specialise(sample)
        return fn

    def _specialise(self, sample: Any) -> Callable[[Any, Any], Any]:
        kind, pos = self.kind, self.position
        if isinstance(sample, (int, float)) and not isinstance(sample, bool):
            if pos not in (0, "0"):
                raise ApiUsageError(
                    f"cannot aggregate field {pos!r} of a plain number; use position 0"
                )
            return _NUMBER_OPS[kind]
        if type(sample) is tuple and isinstance(pos, int):
            i = pos
            if not -len(sample) <= i < len(sample):
                raise ApiUsageError(
                    f"cannot read field {i} of the {len(sample)}-tuple {sample!r} for {kind}()"
                )
            if kind == "sum":
                n = len(sample)
                j = i % n
                if n == 2:  # the common (key, value) pair: no slicing
                    if j == 1:
                        return lambda a, b: (a[0], a[1] + b[1])
                    return lambda a, b: (a[0] + b[0], a[1])
                if n == 3 and j == 1:
                    return lambda a, b: (a[0], a[1] + b[1], a[2])
                if n == 3 and j == 2:
                    return lambda a, b: (a[0], a[1], a[2] + b[2])
                return lambda a, b: a[:i] + (a[i] + b[i],) + a[i + 1 :]
            if kind == "min":
                return lambda a, b: a if a[i] <= b[i] else a[:i] + (b[i],) + a[i + 1 :]
            if kind == "max":
                return lambda a, b: a if a[i] >= b[i] else a[:i] + (b[i],) + a[i + 1 :]
            if kind == "min_by":
                return lambda a, b: a if a[i] <= b[i] else b
            return lambda a, b: a if a[i] >= b[i] else b
        get, put = _getter(pos), _setter(pos)
        if kind == "sum":
            return lambda a, b: put(a, get(a) + get(b))
        if kind == "min":
            return lambda a, b: a if get(a) <= get(b) else put(a, get(b))
        if kind == "max":
            return lambda a, b: a if get(a) >= get(b) else put(a, get(b))
        if kind == "min_by":
            return lambda a, b: a if get(a) <= get(b) else b
        return lambda a, b: a if get(a) >= get(b) else b


_NUMBER_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "sum": lambda a, b: a + b,
    "min": lambda a, b: a if a <= b else b,
    "max": lambda a, b: a if a >= b else b,
    "min_by": lambda a, b: a if a <= b else b,
    "max_by": lambda a, b: a if a >= b else b,
}


def _getter(position: int | str) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        if isinstance(position, str):
            if isinstance(value, dict):
                return value[position]
            field = getattr(value, position, _MISSING)
            if field is _MISSING:
                raise ApiUsageError(f"the record {value!r} has no field {position!r} to aggregate")
            return field
        try:
            return value[position]
        except (TypeError, IndexError, KeyError) as exc:
            raise ApiUsageError(
                f"cannot read field {position!r} of {type(value).__name__} {value!r} for the "
                f"aggregation; records must be tuples, lists, Rows or dicts"
            ) from exc

    return get


def _setter(position: int | str) -> Callable[[Any, Any], Any]:
    from flinklet.common.types import Row

    def put(record: Any, field_value: Any) -> Any:
        if isinstance(record, dict):
            out = dict(record)
            out[position] = field_value
            return out
        if isinstance(record, list):
            lst = list(record)
            lst[_index(record, position)] = field_value
            return lst
        if isinstance(record, Row):
            values = list(record)
            values[_index(record, position)] = field_value
            names = getattr(record, "_fields", None)
            if names:
                return Row(**dict(zip(names, values, strict=True)))
            return Row(*values)
        if isinstance(record, tuple):
            values = list(record)
            values[_index(record, position)] = field_value
            if hasattr(record, "_make"):
                return record._make(values)
            return tuple(values)
        raise ApiUsageError(f"cannot update field {position!r} of {type(record).__name__}")

    return put


def _index(record: Any, position: int | str) -> int:
    if isinstance(position, int):
        return position
    names = getattr(record, "_fields", None)
    if not names or position not in names:
        raise ApiUsageError(f"the record {record!r} has no field {position!r} to aggregate")
    return int(names.index(position))


def sum_function(position: int | str) -> Callable[[Any, Any], Any]:
    return FieldAggregation(position, "sum")


def min_function(position: int | str) -> Callable[[Any, Any], Any]:
    return FieldAggregation(position, "min")


def max_function(position: int | str) -> Callable[[Any, Any], Any]:
    return FieldAggregation(position, "max")


def min_by_function(position: int | str) -> Callable[[Any, Any], Any]:
    return FieldAggregation(position, "min_by")


def max_by_function(position: int | str) -> Callable[[Any, Any], Any]:
    return FieldAggregation(position, "max_by")
