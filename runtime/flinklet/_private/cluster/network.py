"""The data plane between slot processes: one TCP connection per pair of processes,
multiplexing every channel between them, with credit-based flow control.

A consumer grants each remote input channel ``capacity`` credits; a producer may send a
record buffer only while it holds a credit, and the consumer returns one when its task
takes the buffer out. Events (watermarks, barriers, end of partition) travel in band on
the same FIFO connection without credits. So a slow consumer stops its producers with at
most ``capacity`` buffers in flight per channel, and tasks keep seeing the same channel
interface (``push``/``is_full`` on the producer side, ``poll`` on the consumer side) as
in-process channels.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from flinklet._private.cluster.protocol import frame, read_message
from flinklet._private.network.channels import LocalChannel
from flinklet._private.network.elements import RecordBatch

log = logging.getLogger(__name__)

ChannelKey = tuple[Any, ...]  # (job id, attempt, edge key, upstream subtask, downstream subtask)


class RemoteInputChannel(LocalChannel):
    """Consumer side: filled by the network thread; every buffer taken returns a credit."""

    __slots__ = ("_return_credit", "key")

    def __init__(
        self, key: ChannelKey, capacity: int, return_credit: Callable[[ChannelKey, int], None]
    ) -> None:
        super().__init__(capacity, repr(key))
        self.key = key
        self._return_credit = return_credit

    def poll(self) -> Any | None:
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if type(item) is RecordBatch:
            self._return_credit(self.key, 1)
        return item


class RemoteOutputChannel(LocalChannel):
    """Producer side: sends over the connection to the consumer's process while it holds
    credits. ``granted`` is only written by the network thread and ``used`` only by the
    task thread, so no lock is needed."""

    __slots__ = ("_send", "granted", "key", "used")

    def __init__(self, key: ChannelKey, send: Callable[[ChannelKey, Any], None]) -> None:
        super().__init__(0, repr(key))
        self.key = key
        self._send = send
        self.granted = 0
        self.used = 0

    def push(self, item: Any) -> None:
        if type(item) is RecordBatch:
            self.used += 1
        self._send(self.key, item)

    def is_full(self) -> bool:
        return self.used >= self.granted

    def __len__(self) -> int:
        return max(0, self.used - self.granted)


class _Connection:
    """An outgoing connection to one peer process, with its own send queue."""

    def __init__(self, service: NetworkService, address: tuple[str, int]) -> None:
        self.service = service
        self.address = address
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.failed: BaseException | None = None

    async def run(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(*self.address)
        except OSError as exc:
            self.failed = exc
            self.service.on_peer_failure(self.address, exc)
            return
        self.writer = writer
        writer.write(frame(("hello", self.service.process_id)))
        asyncio.get_running_loop().create_task(self.service.read_credits(reader, self.address))
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                queue = self.queue
                while queue:
                    chunk: list[bytes] = []
                    while queue and len(chunk) < 64:
                        chunk.append(queue.popleft())
                    writer.write(b"".join(chunk))
                    await writer.drain()
        except (ConnectionError, OSError) as exc:
            self.failed = exc
            self.service.on_peer_failure(self.address, exc)


class NetworkService:
    """The network thread of a slot process: a data server for incoming connections and
    the outgoing connections to peers, on one asyncio loop."""

    def __init__(self, host: str, process_id: str, wakeup: Callable[[], None]) -> None:
        self.host = host
        self.process_id = process_id
        self.wakeup = wakeup
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.inputs: dict[ChannelKey, RemoteInputChannel] = {}
        self.outputs: dict[ChannelKey, RemoteOutputChannel] = {}
        self._early_credits: dict[ChannelKey, int] = {}
        self._early_items: dict[ChannelKey, list[Any]] = {}
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._credit_writers: dict[str, asyncio.StreamWriter] = {}
        self._producer_of: dict[ChannelKey, str] = {}
        self._initial: dict[ChannelKey, int] = {}
        self.peer_failures: dict[tuple[str, int], str] = {}
        self.on_failure: Callable[[str], None] = lambda reason: None
        self._thread = threading.Thread(target=self._run, name="flinklet-network", daemon=True)
        self._started = threading.Event()
        self._server: asyncio.Server | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start_server())
        self._started.set()
        self.loop.run_forever()

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        def shutdown() -> None:
            for conn in self._connections.values():
                if conn.writer is not None:
                    conn.writer.close()
            if self._server is not None:
                self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(5)

    # -- channels ----------------------------------------------------------------------

    def input_channel(
        self, key: ChannelKey, capacity: int, producer: tuple[str, int]
    ) -> RemoteInputChannel:
        ch = RemoteInputChannel(key, capacity, self._return_credit)
        self.inputs[key] = ch
        for item in self._early_items.pop(key, []):
            ch._items.append(item)
        # the initial credits go to the producer once it has announced the channel
        self.loop.call_soon_threadsafe(self._register_input, key, capacity)
        return ch

    def output_channel(self, key: ChannelKey, consumer: tuple[str, int]) -> RemoteOutputChannel:
        conn = self._connections.get(consumer)
        if conn is None or conn.failed is not None:
            self.peer_failures.pop(consumer, None)
            conn = _Connection(self, consumer)
            self._connections[consumer] = conn
            asyncio.run_coroutine_threadsafe(conn.run(), self.loop)
        ch = RemoteOutputChannel(key, functools.partial(self._send, conn))
        ch.granted += self._early_credits.pop(key, 0)
        self.outputs[key] = ch
        conn.queue.append(frame(("open", key, None)))
        self.loop.call_soon_threadsafe(conn.ready.set)
        return ch

    def release(self, predicate: Callable[[ChannelKey], bool]) -> None:
        """Forget the channels of a cancelled attempt (applied on the network thread)."""
        self.loop.call_soon_threadsafe(self._release, predicate)

    def _release(self, predicate: Callable[[ChannelKey], bool]) -> None:
        for table in (self.inputs, self.outputs):
            for key in [k for k in table if predicate(k)]:
                del table[key]
        for k in [k for k in self._early_items if predicate(k)]:
            del self._early_items[k]
        for k in [k for k in self._early_credits if predicate(k)]:
            del self._early_credits[k]
        for k in [k for k in self._initial if predicate(k)]:
            del self._initial[k]

    def _send(self, conn: _Connection, key: ChannelKey, item: Any) -> None:
        conn.queue.append(frame(("data", key, item)))
        self.loop.call_soon_threadsafe(conn.ready.set)

    # -- credits ----------------------------------------------------------------------

    def _register_input(self, key: ChannelKey, capacity: int) -> None:
        self._initial[key] = capacity
        self._maybe_grant(key)

    def _maybe_grant(self, key: ChannelKey) -> None:
        producer = self._producer_of.get(key)
        if producer is None or key not in self._initial or producer not in self._credit_writers:
            return
        self._write_credit(producer, key, self._initial.pop(key))

    def _return_credit(self, key: ChannelKey, n: int) -> None:
        self.loop.call_soon_threadsafe(self._credit_back, key, n)

    def _credit_back(self, key: ChannelKey, n: int) -> None:
        producer = self._producer_of.get(key)
        if producer is not None:
            self._write_credit(producer, key, n)

    def _write_credit(self, producer: str, key: ChannelKey, n: int) -> None:
        writer = self._credit_writers.get(producer)
        if writer is not None and not writer.is_closing():
            writer.write(frame(("credit", key, n)))

    async def read_credits(self, reader: asyncio.StreamReader, address: tuple[str, int]) -> None:
        try:
            while True:
                msg = await read_message(reader)
                if msg[0] == "credit":
                    _, key, n = msg
                    ch = self.outputs.get(key)
                    if ch is not None:
                        ch.granted += n
                    else:
                        self._early_credits[key] = self._early_credits.get(key, 0) + n
                    self.wakeup()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return

    # -- incoming data ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        producer = ""
        try:
            hello = await read_message(reader)
            producer = hello[1]
            self._credit_writers[producer] = writer
            while True:
                kind, key, item = await read_message(reader)
                if kind == "open":
                    self._producer_of[key] = producer
                    self._maybe_grant(key)
                    continue
                ch = self.inputs.get(key)
                if ch is None:
                    self._early_items.setdefault(key, []).append(item)
                else:
                    ch._items.append(item)
                self.wakeup()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            if producer:
                self._credit_writers.pop(producer, None)
        finally:
            writer.close()

    def on_peer_failure(self, address: tuple[str, int], exc: BaseException) -> None:
        reason = f"lost the data connection to {address[0]}:{address[1]}: {exc}"
        self.peer_failures[address] = reason
        self._connections.pop(address, None)  # a later attempt connects afresh
        self.on_failure(reason)
