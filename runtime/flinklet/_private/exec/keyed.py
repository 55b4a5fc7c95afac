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

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        backend = env.keyed_backend
        backend.register_internal_value_state(self.STATE_NAME)
        self.table = backend.value_table(self.STATE_NAME)
        self.backend = backend
        self._batch = env.batch_mode

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        table, ks, reduce = self.table, self.key_selector, self._reduce
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


def _getter(position: int | str) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if position not in (0, "0"):
                raise ApiUsageError(
                    f"cannot aggregate field {position!r} of a plain number; use position 0"
                )
            return value
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
    def put(record: Any, field_value: Any) -> Any:
        if isinstance(record, (int, float)) and not isinstance(record, bool):
            return field_value
        if isinstance(record, dict):
            out = dict(record)
            out[position] = field_value
            return out
        if isinstance(record, list):
            lst = list(record)
            lst[position] = field_value  # type: ignore[index]
            return lst
        from flinklet.common.types import Row

        if isinstance(record, Row):
            values = list(record)
            idx = position if isinstance(position, int) else _field_index(record, position)
            values[idx] = field_value
            row = Row(*values)
            names = getattr(record, "_fields", None)
            if names:
                row = Row(**dict(zip(names, values, strict=True)))
            return row
        if isinstance(record, tuple):
            idx = position if isinstance(position, int) else _field_index(record, position)
            values = list(record)
            values[idx] = field_value
            if hasattr(record, "_make"):
                return record._make(values)
            return tuple(values)
        raise ApiUsageError(f"cannot update field {position!r} of {type(record).__name__}")

    return put


def _field_index(record: Any, position: int | str) -> int:
    names = getattr(record, "_fields", None)
    if not names or position not in names:
        raise ApiUsageError(f"the record {record!r} has no field {position!r} to aggregate")
    return int(names.index(position))


def sum_function(position: int | str) -> Callable[[Any, Any], Any]:
    get, put = _getter(position), _setter(position)
    return lambda acc, v: put(acc, get(acc) + get(v))


def min_function(position: int | str) -> Callable[[Any, Any], Any]:
    get, put = _getter(position), _setter(position)
    return lambda acc, v: acc if get(acc) <= get(v) else put(acc, get(v))


def max_function(position: int | str) -> Callable[[Any, Any], Any]:
    get, put = _getter(position), _setter(position)
    return lambda acc, v: acc if get(acc) >= get(v) else put(acc, get(v))


def min_by_function(position: int | str) -> Callable[[Any, Any], Any]:
    get = _getter(position)
    return lambda acc, v: acc if get(acc) <= get(v) else v


def max_by_function(position: int | str) -> Callable[[Any, Any], Any]:
    get = _getter(position)
    return lambda acc, v: acc if get(acc) >= get(v) else v
