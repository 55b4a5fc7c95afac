"""``Row``: the record type of PyFlink programs that use ``Types.ROW``/``ROW_NAMED``.

PyFlink programs build rows positionally (``Row(1, 'a')``), by name
(``Row(name='a', n=1)``) or through a field factory (``Row('name', 'n')('a', 1)``),
read them by index, by name and as attributes, and mark changelog rows with a
``RowKind``. Flinklet's ``Row`` does the same, is hashable (so rows can be keys), and
pickles cheaply (rows cross process boundaries between slots).

>>> row = Row(name="Alice", age=11)
>>> row.name, row[1], row.as_dict()
('Alice', 11, {'name': 'Alice', 'age': 11})
>>> Row("name", "age")("Bob", 12)
Row(name='Bob', age=12)
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import Any, overload

from flinklet.errors import ApiUsageError

__all__ = ["Row", "RowKind"]


class RowKind(enum.Enum):
    """The kind of change a row describes in a changelog stream."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def short_string(self) -> str:
        """Flink's short form: ``+I``, ``-U``, ``+U``, ``-D``."""
        return _SHORT_STRINGS[self]


_SHORT_STRINGS = {
    RowKind.INSERT: "+I",
    RowKind.UPDATE_BEFORE: "-U",
    RowKind.UPDATE_AFTER: "+U",
    RowKind.DELETE: "-D",
}


def _restore_row(values: tuple[Any, ...], names: tuple[str, ...] | None, kind: int) -> Row:
    row = Row(*values)
    if names is not None:
        row.set_field_names(names)
    row.set_row_kind(RowKind(kind))
    return row


class Row:
    """A record of field values with optional field names and a :class:`RowKind`.

    Field values are read-only; ``set_row_kind`` and ``set_field_names`` are the only
    mutators. Two rows are equal when kinds and values are equal and, if both have
    field names, the names are equal too. The hash covers the values only.
    """

    __slots__ = ("_fields", "_row_kind", "_values")

    _values: tuple[Any, ...]
    _fields: tuple[str, ...] | None
    _row_kind: RowKind

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ApiUsageError(
                "Row takes either positional values or keyword fields, not both; "
                "use Row(1, 'a') or Row(n=1, name='a')"
            )
        if kwargs:
            object.__setattr__(self, "_fields", tuple(kwargs))
            object.__setattr__(self, "_values", tuple(kwargs.values()))
        else:
            object.__setattr__(self, "_fields", None)
            object.__setattr__(self, "_values", args)
        object.__setattr__(self, "_row_kind", RowKind.INSERT)

    # --- PyFlink's methods -------------------------------------------------------------

    def as_dict(self, recursive: bool = False) -> dict[str, Any]:
        """The row as ``{field name: value}``; ``recursive`` also converts nested rows."""
        if self._fields is None:
            raise ApiUsageError(
                "cannot convert a Row without field names to a dict; build it as "
                "Row(name=...), or call set_field_names(...) first"
            )
        if not recursive:
            return dict(zip(self._fields, self._values, strict=True))
        return {
            name: _as_plain(value) for name, value in zip(self._fields, self._values, strict=True)
        }

    def get_row_kind(self) -> RowKind:
        return self._row_kind

    def set_row_kind(self, row_kind: RowKind) -> None:
        if not isinstance(row_kind, RowKind):
            raise ApiUsageError(f"row kind must be a RowKind, got {row_kind!r}")
        object.__setattr__(self, "_row_kind", row_kind)

    def set_field_names(self, field_names: Sequence[str]) -> None:
        names = tuple(field_names)
        if len(names) != len(self._values):
            raise ApiUsageError(
                f"a Row of {len(self._values)} values needs {len(self._values)} field "
                f"names, got {len(names)}: {list(names)}"
            )
        object.__setattr__(self, "_fields", names)

    def get_field_names(self) -> list[str] | None:
        return list(self._fields) if self._fields is not None else None

    def get_fields_by_names(self, names: Sequence[str]) -> list[Any]:
        return [self[name] for name in names]

    # --- field-factory form: Row("name", "age")("Alice", 11) --------------------------

    def __call__(self, *args: Any) -> Row:
        if not all(isinstance(name, str) for name in self._values):
            raise ApiUsageError(
                "only a Row of field names can be called to make rows, "
                "e.g. Person = Row('name', 'age'); Person('Alice', 11)"
            )
        if len(args) != len(self._values):
            raise ApiUsageError(
                f"this Row factory has fields {list(self._values)}; "
                f"got {len(args)} values: {args!r}"
            )
        row = Row(*args)
        object.__setattr__(row, "_fields", self._values)
        return row

    # --- access --------------------------------------------------------------------------

    @overload
    def __getitem__(self, item: int | str) -> Any: ...

    @overload
    def __getitem__(self, item: slice) -> tuple[Any, ...]: ...

    def __getitem__(self, item: int | str | slice) -> Any:
        if isinstance(item, int | slice):
            return self._values[item]
        try:
            return self._values[self._index_of(item)]
        except ValueError:
            raise KeyError(item) from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[self._index_of(name)]
        except ValueError:
            raise AttributeError(name) from None

    def _index_of(self, name: str) -> int:
        if self._fields is None:
            raise ValueError(name)
        return self._fields.index(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise ApiUsageError(
            f"Row is read-only (cannot set {name!r}); build a new Row with the new values"
        )

    def __delattr__(self, name: str) -> None:
        raise ApiUsageError(f"Row is read-only (cannot delete {name!r})")

    def __contains__(self, item: object) -> bool:
        return item in (self._fields if self._fields is not None else self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    # --- value semantics ---------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        if self._row_kind is not other._row_kind or self._values != other._values:
            return False
        return self._fields is None or other._fields is None or self._fields == other._fields

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        if self._fields is not None:
            body = ", ".join(
                f"{name}={value!r}" for name, value in zip(self._fields, self._values, strict=True)
            )
        else:
            body = ", ".join(repr(value) for value in self._values)
        return f"Row({body})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_row, (self._values, self._fields, self._row_kind.value))


def _as_plain(value: Any) -> Any:
    if isinstance(value, Row):
        return value.as_dict(recursive=True)
    if isinstance(value, list):
        return [_as_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_plain(item) for key, item in value.items()}
    return value
