"""Encoder.simple_string_encoder and SimpleStringSchema."""

import pytest

from flinklet.common.serialization import Encoder, SimpleStringSchema
from flinklet.common.typeinfo import Types
from flinklet.errors import ApiUsageError


def test_simple_string_encoder_writes_str_and_newline() -> None:
    assert Encoder.simple_string_encoder().encode(("a", 1)) == b"('a', 1)\n"


def test_simple_string_encoder_uses_charset() -> None:
    assert Encoder.simple_string_encoder("latin-1").encode("é") == b"\xe9\n"


def test_simple_string_encoder_rejects_unknown_charset() -> None:
    with pytest.raises(ApiUsageError, match="unknown charset 'klingon'"):
        Encoder.simple_string_encoder("klingon")


def test_simple_string_schema_round_trip() -> None:
    schema = SimpleStringSchema()
    assert schema.deserialize(schema.serialize("héllo")) == "héllo"


def test_simple_string_schema_serializes_utf8_by_default() -> None:
    assert SimpleStringSchema().serialize("é") == b"\xc3\xa9"


def test_simple_string_schema_rejects_non_strings() -> None:
    with pytest.raises(ApiUsageError, match=r"map records to str first"):
        SimpleStringSchema().serialize(42)


def test_simple_string_schema_produces_strings() -> None:
    assert SimpleStringSchema().get_produced_type() == Types.STRING()


def test_simple_string_schema_never_ends_the_stream() -> None:
    assert SimpleStringSchema().is_end_of_stream("anything") is False
