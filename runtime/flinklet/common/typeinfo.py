"""Type information: what PyFlink's ``Types.*`` describe, for Flinklet's serializers.

PyFlink programs pass ``output_type=Types.ROW([...])`` and state descriptors with
``Types.LONG()``. Flinklet accepts the same objects everywhere and uses them to choose
compact serializers for records, keys and state (pickle is the fallback for
``PICKLED_BYTE_ARRAY`` and for data without type information). Each
:class:`TypeInformation` is an immutable value with a :class:`TypeKind` and the
Python type its values have.

>>> t = Types.ROW_NAMED(["name", "count"], [Types.STRING(), Types.LONG()])
>>> t.get_field_index("count"), t.get_field_types()[0]
(1, Types.STRING())
"""

from __future__ import annotations

import datetime
import decimal
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from flinklet.common.time import Instant
from flinklet.common.types import Row
from flinklet.errors import ApiUsageError

__all__ = [
    "BasicArrayTypeInfo",
    "BasicTypeInfo",
    "ListTypeInfo",
    "MapTypeInfo",
    "ObjectArrayTypeInfo",
    "PickledBytesTypeInfo",
    "PrimitiveArrayTypeInfo",
    "RowTypeInfo",
    "SqlTimeTypeInfo",
    "TupleTypeInfo",
    "TypeInformation",
    "TypeKind",
    "Types",
]


class TypeKind(enum.Enum):
    """Every kind of type ``Types`` can describe; serializers dispatch on it."""

    STRING = "STRING"
    BYTE = "BYTE"
    BOOLEAN = "BOOLEAN"
    SHORT = "SHORT"
    INT = "INT"
    LONG = "LONG"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    CHAR = "CHAR"
    BIG_INT = "BIG_INT"
    BIG_DEC = "BIG_DEC"
    INSTANT = "INSTANT"
    SQL_DATE = "SQL_DATE"
    SQL_TIME = "SQL_TIME"
    SQL_TIMESTAMP = "SQL_TIMESTAMP"
    PICKLED_BYTE_ARRAY = "PICKLED_BYTE_ARRAY"
    ROW = "ROW"
    TUPLE = "TUPLE"
    PRIMITIVE_ARRAY = "PRIMITIVE_ARRAY"
    BASIC_ARRAY = "BASIC_ARRAY"
    OBJECT_ARRAY = "OBJECT_ARRAY"
    MAP = "MAP"
    LIST = "LIST"


_BASIC_PYTHON_TYPES: dict[TypeKind, type] = {
    TypeKind.STRING: str,
    TypeKind.BYTE: int,
    TypeKind.BOOLEAN: bool,
    TypeKind.SHORT: int,
    TypeKind.INT: int,
    TypeKind.LONG: int,
    TypeKind.FLOAT: float,
    TypeKind.DOUBLE: float,
    TypeKind.CHAR: str,
    TypeKind.BIG_INT: int,
    TypeKind.BIG_DEC: decimal.Decimal,
    TypeKind.INSTANT: Instant,
}
_SQL_TIME_PYTHON_TYPES: dict[TypeKind, type] = {
    TypeKind.SQL_DATE: datetime.date,
    TypeKind.SQL_TIME: datetime.time,
    TypeKind.SQL_TIMESTAMP: datetime.datetime,
}
_PRIMITIVE_KINDS = frozenset(
    {
        TypeKind.BYTE,
        TypeKind.BOOLEAN,
        TypeKind.SHORT,
        TypeKind.INT,
        TypeKind.LONG,
        TypeKind.FLOAT,
        TypeKind.DOUBLE,
        TypeKind.CHAR,
    }
)


class TypeInformation:
    """Base of every type description; subclasses are frozen, comparable values."""

    @property
    def kind(self) -> TypeKind:
        raise NotImplementedError

    @property
    def python_type(self) -> type:
        """The Python type of values of this type (``int`` for ``Types.LONG()``...)."""
        raise NotImplementedError


def _check_type_info(value: object, what: str) -> TypeInformation:
    if not isinstance(value, TypeInformation):
        raise ApiUsageError(
            f"{what} must be type information such as Types.INT(), got {value!r}; "
            "call the Types method (Types.INT(), not Types.INT)"
        )
    return value


@dataclass(frozen=True, repr=False)
class BasicTypeInfo(TypeInformation):
    """A scalar: string, the integer and float widths, char, big int/decimal, instant."""

    basic_kind: TypeKind

    def __post_init__(self) -> None:
        if self.basic_kind not in _BASIC_PYTHON_TYPES:
            raise ApiUsageError(f"{self.basic_kind} is not a basic type; use Types.* instead")

    @property
    def kind(self) -> TypeKind:
        return self.basic_kind

    @property
    def python_type(self) -> type:
        return _BASIC_PYTHON_TYPES[self.basic_kind]

    def __repr__(self) -> str:
        return f"Types.{self.basic_kind.value}()"


@dataclass(frozen=True, repr=False)
class SqlTimeTypeInfo(TypeInformation):
    """``java.sql`` date, time and timestamp: Python ``date``, ``time``, ``datetime``."""

    time_kind: TypeKind

    def __post_init__(self) -> None:
        if self.time_kind not in _SQL_TIME_PYTHON_TYPES:
            raise ApiUsageError(f"{self.time_kind} is not a SQL time type")

    @property
    def kind(self) -> TypeKind:
        return self.time_kind

    @property
    def python_type(self) -> type:
        return _SQL_TIME_PYTHON_TYPES[self.time_kind]

    def __repr__(self) -> str:
        return f"Types.{self.time_kind.value}()"


@dataclass(frozen=True, repr=False)
class PickledBytesTypeInfo(TypeInformation):
    """Any picklable Python object, serialized with pickle."""

    @property
    def kind(self) -> TypeKind:
        return TypeKind.PICKLED_BYTE_ARRAY

    @property
    def python_type(self) -> type:
        return object

    def __repr__(self) -> str:
        return "Types.PICKLED_BYTE_ARRAY()"


@dataclass(frozen=True, repr=False)
class RowTypeInfo(TypeInformation):
    """A :class:`~flinklet.common.types.Row` with named, typed fields."""

    field_types: tuple[TypeInformation, ...]
    field_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for index, field_type in enumerate(self.field_types):
            _check_type_info(field_type, f"row field {index}")
        if len(self.field_names) != len(self.field_types):
            raise ApiUsageError(
                f"a row needs one name per field type: {len(self.field_names)} names "
                f"{list(self.field_names)} for {len(self.field_types)} types"
            )
        if not all(isinstance(name, str) and name for name in self.field_names):
            raise ApiUsageError(f"row field names must be non-empty strings: {self.field_names}")
        if len(set(self.field_names)) != len(self.field_names):
            raise ApiUsageError(f"row field names must be unique: {list(self.field_names)}")

    @property
    def kind(self) -> TypeKind:
        return TypeKind.ROW

    @property
    def python_type(self) -> type:
        return Row

    def get_field_names(self) -> list[str]:
        return list(self.field_names)

    def get_field_types(self) -> list[TypeInformation]:
        return list(self.field_types)

    def get_field_index(self, field_name: str) -> int:
        """The position of ``field_name``, or -1 when the row has no such field."""
        try:
            return self.field_names.index(field_name)
        except ValueError:
            return -1

    def get_arity(self) -> int:
        return len(self.field_types)

    def __repr__(self) -> str:
        return f"Types.ROW_NAMED({list(self.field_names)!r}, {list(self.field_types)!r})"


@dataclass(frozen=True, repr=False)
class TupleTypeInfo(TypeInformation):
    """A Python ``tuple`` with typed positions."""

    field_types: tuple[TypeInformation, ...]

    def __post_init__(self) -> None:
        for index, field_type in enumerate(self.field_types):
            _check_type_info(field_type, f"tuple field {index}")

    @property
    def kind(self) -> TypeKind:
        return TypeKind.TUPLE

    @property
    def python_type(self) -> type:
        return tuple

    def get_field_types(self) -> list[TypeInformation]:
        return list(self.field_types)

    def get_arity(self) -> int:
        return len(self.field_types)

    def __repr__(self) -> str:
        return f"Types.TUPLE({list(self.field_types)!r})"


@dataclass(frozen=True, repr=False)
class PrimitiveArrayTypeInfo(TypeInformation):
    """An array of a primitive (numbers, boolean, char); of BYTE it is ``bytes``."""

    element_type: TypeInformation

    def __post_init__(self) -> None:
        _check_type_info(self.element_type, "array element type")
        if self.element_type.kind not in _PRIMITIVE_KINDS:
            raise ApiUsageError(
                f"PRIMITIVE_ARRAY holds numbers, booleans or chars, not {self.element_type!r}; "
                "use Types.BASIC_ARRAY or Types.OBJECT_ARRAY for other elements"
            )

    @property
    def kind(self) -> TypeKind:
        return TypeKind.PRIMITIVE_ARRAY

    @property
    def python_type(self) -> type:
        return bytes if self.element_type.kind is TypeKind.BYTE else list

    def __repr__(self) -> str:
        return f"Types.PRIMITIVE_ARRAY({self.element_type!r})"


@dataclass(frozen=True, repr=False)
class BasicArrayTypeInfo(TypeInformation):
    """A ``list`` of a basic type (elements may be None)."""

    element_type: TypeInformation

    def __post_init__(self) -> None:
        _check_type_info(self.element_type, "array element type")
        if not isinstance(self.element_type, BasicTypeInfo):
            raise ApiUsageError(
                f"BASIC_ARRAY holds basic types (Types.STRING(), Types.INT()...), not "
                f"{self.element_type!r}; use Types.OBJECT_ARRAY for other elements"
            )

    @property
    def kind(self) -> TypeKind:
        return TypeKind.BASIC_ARRAY

    @property
    def python_type(self) -> type:
        return list

    def __repr__(self) -> str:
        return f"Types.BASIC_ARRAY({self.element_type!r})"


@dataclass(frozen=True, repr=False)
class ObjectArrayTypeInfo(TypeInformation):
    """A ``list`` of any typed element (rows, tuples, nested arrays...)."""

    element_type: TypeInformation

    def __post_init__(self) -> None:
        _check_type_info(self.element_type, "array element type")

    @property
    def kind(self) -> TypeKind:
        return TypeKind.OBJECT_ARRAY

    @property
    def python_type(self) -> type:
        return list

    def __repr__(self) -> str:
        return f"Types.OBJECT_ARRAY({self.element_type!r})"


@dataclass(frozen=True, repr=False)
class MapTypeInfo(TypeInformation):
    """A ``dict`` with typed keys and values."""

    key_type: TypeInformation
    value_type: TypeInformation

    def __post_init__(self) -> None:
        _check_type_info(self.key_type, "map key type")
        _check_type_info(self.value_type, "map value type")

    @property
    def kind(self) -> TypeKind:
        return TypeKind.MAP

    @property
    def python_type(self) -> type:
        return dict

    def __repr__(self) -> str:
        return f"Types.MAP({self.key_type!r}, {self.value_type!r})"


@dataclass(frozen=True, repr=False)
class ListTypeInfo(TypeInformation):
    """A ``list`` of typed elements (Java's ``List``)."""

    element_type: TypeInformation

    def __post_init__(self) -> None:
        _check_type_info(self.element_type, "list element type")

    @property
    def kind(self) -> TypeKind:
        return TypeKind.LIST

    @property
    def python_type(self) -> type:
        return list

    def __repr__(self) -> str:
        return f"Types.LIST({self.element_type!r})"


def _types_of(field_types: Sequence[TypeInformation], what: str) -> tuple[TypeInformation, ...]:
    if isinstance(field_types, TypeInformation) or not isinstance(field_types, Sequence):
        raise ApiUsageError(
            f"{what} takes a list of field types, e.g. [Types.INT(), Types.STRING()]"
        )
    return tuple(field_types)


class Types:
    """PyFlink's factory of type information: ``Types.INT()``, ``Types.ROW([...])``..."""

    @staticmethod
    def STRING() -> TypeInformation:
        return BasicTypeInfo(TypeKind.STRING)

    @staticmethod
    def BYTE() -> TypeInformation:
        return BasicTypeInfo(TypeKind.BYTE)

    @staticmethod
    def BOOLEAN() -> TypeInformation:
        return BasicTypeInfo(TypeKind.BOOLEAN)

    @staticmethod
    def SHORT() -> TypeInformation:
        return BasicTypeInfo(TypeKind.SHORT)

    @staticmethod
    def INT() -> TypeInformation:
        return BasicTypeInfo(TypeKind.INT)

    @staticmethod
    def LONG() -> TypeInformation:
        return BasicTypeInfo(TypeKind.LONG)

    @staticmethod
    def FLOAT() -> TypeInformation:
        return BasicTypeInfo(TypeKind.FLOAT)

    @staticmethod
    def DOUBLE() -> TypeInformation:
        return BasicTypeInfo(TypeKind.DOUBLE)

    @staticmethod
    def CHAR() -> TypeInformation:
        return BasicTypeInfo(TypeKind.CHAR)

    @staticmethod
    def BIG_INT() -> TypeInformation:
        return BasicTypeInfo(TypeKind.BIG_INT)

    @staticmethod
    def BIG_DEC() -> TypeInformation:
        return BasicTypeInfo(TypeKind.BIG_DEC)

    @staticmethod
    def INSTANT() -> TypeInformation:
        return BasicTypeInfo(TypeKind.INSTANT)

    @staticmethod
    def SQL_DATE() -> TypeInformation:
        return SqlTimeTypeInfo(TypeKind.SQL_DATE)

    @staticmethod
    def SQL_TIME() -> TypeInformation:
        return SqlTimeTypeInfo(TypeKind.SQL_TIME)

    @staticmethod
    def SQL_TIMESTAMP() -> TypeInformation:
        return SqlTimeTypeInfo(TypeKind.SQL_TIMESTAMP)

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        return PickledBytesTypeInfo()

    @staticmethod
    def ROW(field_types: Sequence[TypeInformation]) -> RowTypeInfo:
        """A row with fields named ``f0``, ``f1``... as in Flink."""
        types = _types_of(field_types, "Types.ROW")
        return RowTypeInfo(types, tuple(f"f{index}" for index in range(len(types))))

    @staticmethod
    def ROW_NAMED(
        field_names: Sequence[str], field_types: Sequence[TypeInformation]
    ) -> RowTypeInfo:
        if isinstance(field_names, str):
            raise ApiUsageError(
                f"Types.ROW_NAMED takes a list of names, got the string {field_names!r}"
            )
        return RowTypeInfo(_types_of(field_types, "Types.ROW_NAMED"), tuple(field_names))

    @staticmethod
    def TUPLE(field_types: Sequence[TypeInformation]) -> TupleTypeInfo:
        return TupleTypeInfo(_types_of(field_types, "Types.TUPLE"))

    @staticmethod
    def PRIMITIVE_ARRAY(element_type: TypeInformation) -> PrimitiveArrayTypeInfo:
        return PrimitiveArrayTypeInfo(element_type)

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> BasicArrayTypeInfo:
        return BasicArrayTypeInfo(element_type)

    @staticmethod
    def OBJECT_ARRAY(element_type: TypeInformation) -> ObjectArrayTypeInfo:
        return ObjectArrayTypeInfo(element_type)

    @staticmethod
    def MAP(key_type_info: TypeInformation, value_type_info: TypeInformation) -> MapTypeInfo:
        return MapTypeInfo(key_type_info, value_type_info)

    @staticmethod
    def LIST(element_type_info: TypeInformation) -> ListTypeInfo:
        return ListTypeInfo(element_type_info)
