"""Types.* type information: equality, repr, Python types and validation."""

import datetime
import decimal
import re

import pytest

from flinklet.common.time import Instant
from flinklet.common.typeinfo import RowTypeInfo, TypeInformation, TypeKind, Types
from flinklet.common.types import Row
from flinklet.errors import ApiUsageError


def test_same_basic_types_are_equal() -> None:
    assert Types.INT() == Types.INT()
    assert Types.INT() != Types.LONG()


def test_basic_type_repr_is_its_factory_call() -> None:
    assert repr(Types.STRING()) == "Types.STRING()"


@pytest.mark.parametrize(
    ("type_info", "python_type"),
    [
        (Types.STRING(), str),
        (Types.BOOLEAN(), bool),
        (Types.LONG(), int),
        (Types.DOUBLE(), float),
        (Types.BIG_DEC(), decimal.Decimal),
        (Types.INSTANT(), Instant),
        (Types.SQL_DATE(), datetime.date),
        (Types.SQL_TIMESTAMP(), datetime.datetime),
        (Types.PICKLED_BYTE_ARRAY(), object),
        (Types.ROW([Types.INT()]), Row),
        (Types.TUPLE([Types.INT()]), tuple),
        (Types.MAP(Types.STRING(), Types.INT()), dict),
        (Types.LIST(Types.INT()), list),
    ],
)
def test_python_type(type_info: TypeInformation, python_type: type) -> None:
    assert type_info.python_type is python_type


def test_kind_names_the_type() -> None:
    assert Types.SQL_TIME().kind is TypeKind.SQL_TIME


def test_row_fields_are_named_f0_f1() -> None:
    assert Types.ROW([Types.INT(), Types.STRING()]).get_field_names() == ["f0", "f1"]


def test_row_named_field_index() -> None:
    row_type = Types.ROW_NAMED(["name", "count"], [Types.STRING(), Types.LONG()])
    assert (row_type.get_field_index("count"), row_type.get_field_index("nope")) == (1, -1)


def test_row_named_field_types() -> None:
    row_type = Types.ROW_NAMED(["a"], [Types.DOUBLE()])
    assert row_type.get_field_types() == [Types.DOUBLE()]
    assert row_type.get_arity() == 1


def test_row_named_repr() -> None:
    row_type = Types.ROW_NAMED(["a", "b"], [Types.STRING(), Types.INT()])
    assert repr(row_type) == "Types.ROW_NAMED(['a', 'b'], [Types.STRING(), Types.INT()])"


def test_row_named_needs_one_name_per_type() -> None:
    with pytest.raises(ApiUsageError, match="one name per field type"):
        Types.ROW_NAMED(["a"], [Types.INT(), Types.INT()])


def test_row_named_rejects_duplicate_names() -> None:
    with pytest.raises(ApiUsageError, match="unique"):
        Types.ROW_NAMED(["a", "a"], [Types.INT(), Types.INT()])


def test_row_named_rejects_a_single_string_of_names() -> None:
    with pytest.raises(ApiUsageError, match="list of names"):
        Types.ROW_NAMED("ab", [Types.INT(), Types.INT()])


def test_uncalled_types_method_is_explained() -> None:
    with pytest.raises(ApiUsageError, match=r"Types.INT\(\), not Types.INT"):
        Types.ROW([Types.INT])  # type: ignore[list-item]


def test_row_of_a_single_type_instead_of_list_is_rejected() -> None:
    with pytest.raises(ApiUsageError, match="list of field types"):
        Types.ROW(Types.INT())  # type: ignore[arg-type]


def test_tuple_field_types() -> None:
    assert Types.TUPLE([Types.INT(), Types.STRING()]).get_field_types() == [
        Types.INT(),
        Types.STRING(),
    ]


def test_primitive_byte_array_is_bytes() -> None:
    assert Types.PRIMITIVE_ARRAY(Types.BYTE()).python_type is bytes


def test_primitive_int_array_is_list() -> None:
    assert Types.PRIMITIVE_ARRAY(Types.INT()).python_type is list


def test_primitive_array_rejects_strings() -> None:
    with pytest.raises(ApiUsageError, match=re.escape("BASIC_ARRAY or Types.OBJECT_ARRAY")):
        Types.PRIMITIVE_ARRAY(Types.STRING())


def test_basic_array_rejects_rows() -> None:
    with pytest.raises(ApiUsageError, match="OBJECT_ARRAY"):
        Types.BASIC_ARRAY(Types.ROW([Types.INT()]))


def test_object_array_of_rows() -> None:
    assert repr(Types.OBJECT_ARRAY(Types.ROW([Types.INT()]))) == (
        "Types.OBJECT_ARRAY(Types.ROW_NAMED(['f0'], [Types.INT()]))"
    )


def test_map_equality_and_parts() -> None:
    map_type = Types.MAP(Types.STRING(), Types.LONG())
    assert map_type == Types.MAP(Types.STRING(), Types.LONG())
    assert (map_type.key_type, map_type.value_type) == (Types.STRING(), Types.LONG())


def test_list_repr() -> None:
    assert repr(Types.LIST(Types.INT())) == "Types.LIST(Types.INT())"


def test_type_information_is_hashable() -> None:
    seen = {Types.ROW([Types.INT()]): "row", Types.INT(): "int"}
    assert seen[Types.ROW([Types.INT()])] == "row"


def test_row_type_info_is_a_type_information() -> None:
    assert isinstance(Types.ROW([]), RowTypeInfo)
    assert isinstance(Types.ROW([]), TypeInformation)
