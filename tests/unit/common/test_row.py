"""Row: construction, access, row kinds, equality and pickling."""

import pickle

import pytest

from flinklet.common.types import Row, RowKind
from flinklet.errors import ApiUsageError


def test_positional_row_reads_by_index() -> None:
    row = Row(1, "a")
    assert (row[0], row[1], len(row)) == (1, "a", 2)


def test_keyword_row_reads_by_name_attribute_and_index() -> None:
    row = Row(name="Alice", age=11)
    assert (row["name"], row.age, row[0]) == ("Alice", 11, "Alice")


def test_keyword_row_keeps_argument_order() -> None:
    assert Row(name="a", n=1).get_field_names() == ["name", "n"]


def test_field_factory_makes_named_rows() -> None:
    person = Row("name", "age")
    assert person("Bob", 12).as_dict() == {"name": "Bob", "age": 12}


def test_field_factory_checks_arity() -> None:
    with pytest.raises(ApiUsageError, match=r"fields \['name', 'age'\]"):
        Row("name", "age")("Bob")


def test_calling_a_row_of_values_is_explained() -> None:
    with pytest.raises(ApiUsageError, match="only a Row of field names"):
        Row(1, 2)(3, 4)


def test_args_and_kwargs_together_are_rejected() -> None:
    with pytest.raises(ApiUsageError, match="not both"):
        Row(1, name="a")


def test_as_dict_recursive_converts_nested_rows() -> None:
    row = Row(id=1, inner=Row(x=2), items=[Row(y=3)])
    assert row.as_dict(recursive=True) == {"id": 1, "inner": {"x": 2}, "items": [{"y": 3}]}


def test_as_dict_without_names_says_how_to_fix() -> None:
    with pytest.raises(ApiUsageError, match="set_field_names"):
        Row(1, 2).as_dict()


def test_set_field_names_names_a_positional_row() -> None:
    row = Row(1, 2)
    row.set_field_names(["a", "b"])
    assert row.b == 2


def test_set_field_names_checks_count() -> None:
    with pytest.raises(ApiUsageError, match="needs 2 field names"):
        Row(1, 2).set_field_names(["a"])


def test_row_kind_defaults_to_insert() -> None:
    assert Row(1).get_row_kind() is RowKind.INSERT


def test_set_row_kind() -> None:
    row = Row(1)
    row.set_row_kind(RowKind.DELETE)
    assert row.get_row_kind() is RowKind.DELETE


def test_row_kind_short_strings() -> None:
    assert [kind.short_string() for kind in RowKind] == ["+I", "-U", "+U", "-D"]


def test_equal_rows() -> None:
    assert Row(1, "a") == Row(1, "a")
    assert Row(1, "a") != Row("a", 1)


def test_row_kind_takes_part_in_equality() -> None:
    deleted = Row(1)
    deleted.set_row_kind(RowKind.DELETE)
    assert deleted != Row(1)


def test_names_compared_only_when_both_rows_have_them() -> None:
    assert Row(a=1) == Row(1)
    assert Row(a=1) != Row(b=1)


def test_equal_rows_hash_equal() -> None:
    assert len({Row(x=1, y=2), Row(1, 2)}) == 1


def test_repr_of_named_row() -> None:
    assert repr(Row(name="a", n=1)) == "Row(name='a', n=1)"


def test_repr_of_positional_row() -> None:
    assert repr(Row(1, "a")) == "Row(1, 'a')"


def test_pickle_keeps_values_names_and_kind() -> None:
    row = Row(name="a", n=1)
    row.set_row_kind(RowKind.UPDATE_AFTER)
    restored = pickle.loads(pickle.dumps(row))
    assert (restored, restored.get_field_names(), restored.get_row_kind()) == (
        row,
        ["name", "n"],
        RowKind.UPDATE_AFTER,
    )


def test_row_is_read_only() -> None:
    row = Row(n=1)
    with pytest.raises(ApiUsageError, match="read-only"):
        row.n = 2


def test_contains_looks_at_names_of_named_rows() -> None:
    assert "name" in Row(name="a")
    assert 1 in Row(1, 2)


def test_missing_name_is_key_error() -> None:
    with pytest.raises(KeyError):
        Row(a=1)["b"]


def test_missing_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = Row(a=1).b


def test_iterates_values() -> None:
    assert list(Row(a=1, b=2)) == [1, 2]


def test_slice_returns_values() -> None:
    assert Row(1, 2, 3)[1:] == (2, 3)


def test_get_fields_by_names() -> None:
    assert Row(a=1, b=2, c=3).get_fields_by_names(["c", "a"]) == [3, 1]
