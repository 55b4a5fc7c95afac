"""Framing for the JobManager <-> slot control connections and the data connections
between slot processes: a 4-byte big-endian length, then a pickled message.

These ports carry pickled Python objects and so must only be reachable by the cluster's
own processes (inside the pod network; never exposed through a public Service).
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any

import cloudpickle

_LEN = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


def dumps(message: Any) -> bytes:
    """Pickle a message; objects of classes defined in the job's ``__main__`` (which the
    receiving process cannot import) are pickled by value through cloudpickle."""
    try:
        data = pickle.dumps(message, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return cloudpickle.dumps(message, protocol=5)  # type: ignore[no-any-return]
    if b"__main__" in data:
        return cloudpickle.dumps(message, protocol=5)  # type: ignore[no-any-return]
    return data


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def frame(message: Any) -> bytes:
    body = dumps(message)
    return _LEN.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> Any:
    header = await reader.readexactly(_LEN.size)
    (length,) = _LEN.unpack(header)
    if length > MAX_FRAME:
        raise ConnectionError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    return loads(await reader.readexactly(length))


async def write_message(writer: asyncio.StreamWriter, message: Any) -> None:
    writer.write(frame(message))
    await writer.drain()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
