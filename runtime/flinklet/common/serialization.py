"""Turning records into bytes and back, for sinks and sources that speak bytes.

File sinks write each record through an :class:`Encoder`; Kafka-like connectors use a
:class:`SerializationSchema` / :class:`DeserializationSchema`. PyFlink users reach for
``Encoder.simple_string_encoder()`` and ``SimpleStringSchema()``; both are here with
the same names, plus the small base classes connectors are written against.

>>> Encoder.simple_string_encoder().encode(42)
b'42\\n'
>>> SimpleStringSchema().deserialize(b"hello")
'hello'
"""

from __future__ import annotations

import abc
import codecs
from dataclasses import dataclass
from typing import Any

from flinklet.common.typeinfo import TypeInformation, Types
from flinklet.errors import ApiUsageError

__all__ = [
    "DeserializationSchema",
    "Encoder",
    "SerializationSchema",
    "SimpleStringEncoder",
    "SimpleStringSchema",
]


def _checked_charset(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except (LookupError, TypeError):
        raise ApiUsageError(
            f"unknown charset {charset!r}; use a Python codec name such as 'UTF-8' or 'latin-1'"
        ) from None


class Encoder(abc.ABC):
    """Writes one record as bytes into a row-format file."""

    @abc.abstractmethod
    def encode(self, value: Any) -> bytes:
        """The bytes written for ``value``, including any record separator."""

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> Encoder:
        """``str(value)`` followed by a newline, in ``charset_name``."""
        return SimpleStringEncoder(charset_name)


@dataclass(frozen=True)
class SimpleStringEncoder(Encoder):
    """The encoder ``Encoder.simple_string_encoder()`` returns."""

    charset_name: str = "UTF-8"

    def __post_init__(self) -> None:
        _checked_charset(self.charset_name)

    def encode(self, value: Any) -> bytes:
        return (str(value) + "\n").encode(self.charset_name)


class SerializationSchema(abc.ABC):
    """Turns a record into the bytes of one message."""

    @abc.abstractmethod
    def serialize(self, element: Any) -> bytes: ...


class DeserializationSchema(abc.ABC):
    """Turns the bytes of one message into a record."""

    @abc.abstractmethod
    def deserialize(self, message: bytes) -> Any: ...

    def is_end_of_stream(self, next_element: Any) -> bool:
        """Whether ``next_element`` ends the stream; by default no element does."""
        return False

    def get_produced_type(self) -> TypeInformation:
        return Types.PICKLED_BYTE_ARRAY()


class SimpleStringSchema(SerializationSchema, DeserializationSchema):
    """Strings as their bytes in ``charset`` (UTF-8 by default), both ways."""

    def __init__(self, charset: str = "UTF-8") -> None:
        self._charset = _checked_charset(charset)

    def serialize(self, element: Any) -> bytes:
        if not isinstance(element, str):
            raise ApiUsageError(
                f"SimpleStringSchema serializes str, got {type(element).__name__} "
                f"{element!r}; map records to str first (e.g. .map(str))"
            )
        return element.encode(self._charset)

    def deserialize(self, message: bytes) -> str:
        return bytes(message).decode(self._charset)

    def get_produced_type(self) -> TypeInformation:
        return Types.STRING()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SimpleStringSchema):
            return NotImplemented
        return self._charset == other._charset

    def __hash__(self) -> int:
        return hash(self._charset)

    def __repr__(self) -> str:
        return f"SimpleStringSchema(charset={self._charset!r})"
