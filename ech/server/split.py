"""Split mode: the client-facing server relays to a backend (RFC 9849 §3.1, §7.1).

After :class:`~ech.server.connection.ServerConnection` accepts ECH for a
name a backend serves, it emits :class:`~ech.events.ForwardToBackend` and
steps aside. :class:`SplitRelay` (sans-IO) then sends ClientHelloInner to
the backend and relays records both ways without terminating TLS. The one
exception is the case other proxies give up on: after a backend's
HelloRetryRequest, the client's second ClientHelloOuter is decrypted with the
same HPKE context and ClientHelloInner2 goes to the same backend connection
(§7.1.1, checklist #80, #83-#85). The backend must run in backend mode
(``ServerConfig(ech_backend=True)``) so that it signals acceptance (§7.2).

The channel to the backend is plain TCP here; §10.1 assumes it is
authenticated, which is the operator's to arrange (checklist #92).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable

from ech.errors import Alert, UnexpectedMessage
from ech.events import ForwardToBackend
from ech.server.ech import open_second_client_hello
from ech.tls.enums import AlertDescription, ContentType, HandshakeType
from ech.tls.messages import ClientHello, ServerHello
from ech.tls.records import (
    HandshakeReassembler,
    RecordLayer,
    frame_handshake,
    plaintext_alert,
)
from ech.tls.wire import FrameBuffer

log = logging.getLogger("ech.split")

#: ClientHellos are far smaller; this bounds what we buffer while parsing.
_MAX_HELLO = 1 << 16


class RelayState(enum.Enum):
    """Where the relay is."""

    WAIT_BACKEND_HELLO = "wait_backend_hello"
    WAIT_SECOND_HELLO = "wait_second_hello"
    RELAY = "relay"
    FAILED = "failed"


class SplitRelay:
    """Relays one split-mode connection. Performs no I/O.

    Feed client bytes to :meth:`client_data` and backend bytes to
    :meth:`backend_data`; take what to send with :meth:`data_to_client` and
    :meth:`data_to_backend`.
    """

    def __init__(self, forward: ForwardToBackend) -> None:
        self.forward = forward
        self.state = RelayState.WAIT_BACKEND_HELLO
        self.hello_retry = False
        self._to_client = bytearray()
        self._to_backend = bytearray()
        self._client_records = FrameBuffer(5, 2)
        self._backend_records = FrameBuffer(5, 2)
        self._backend_hello = HandshakeReassembler(_MAX_HELLO)
        self._client_hello = HandshakeReassembler(_MAX_HELLO)
        self._send_hello_to_backend(forward.inner_hello)
        if forward.pending:
            self.client_data(forward.pending)

    def _send_hello_to_backend(self, hello: bytes) -> None:
        records = RecordLayer()
        records.write(ContentType.HANDSHAKE, hello)
        self._to_backend += records.data_to_send()

    # client side --------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        """Bytes from the client.

        Raises:
            Alert: a second ClientHelloOuter that breaks §7.1.1; the alert
                for the client is queued and the relay has failed.
        """
        if self.state is not RelayState.WAIT_SECOND_HELLO:
            self._to_backend += data
            return
        try:
            self._client_records.feed(data)
            self._second_hello_records()
        except Alert as alert:
            self.state = RelayState.FAILED
            self._to_client += plaintext_alert(alert.description)
            raise

    def _second_hello_records(self) -> None:
        while self.state is RelayState.WAIT_SECOND_HELLO:
            peeked = self._client_records.peek()
            if peeked is None:
                return
            content_type, length = peeked
            frame = self._client_records.pop(length)
            if frame is None:
                return
            header, body = frame
            if content_type != ContentType.HANDSHAKE:
                # change_cipher_spec (RFC 8446 §D.4) or an alert: pass it on.
                self._to_backend += header + body
                continue
            self._client_hello.feed(body)
            message = self._client_hello.pop()
            if message is None:
                continue
            msg_type, hello_body, _raw = message
            if msg_type != HandshakeType.CLIENT_HELLO or self._client_hello.pending:
                raise UnexpectedMessage("expected the second ClientHello only")
            outer = ClientHello.parse(hello_body)
            inner = open_second_client_hello(outer, self.forward.accepted)
            self._send_hello_to_backend(frame_handshake(inner.msg_type, inner.encode()))
            self.state = RelayState.RELAY
            self._to_backend += self._client_records.take_all()

    # backend side -------------------------------------------------------------

    def backend_data(self, data: bytes) -> None:
        """Bytes from the backend: relayed as they are, first hello inspected."""
        self._to_client += data
        if self.state is not RelayState.WAIT_BACKEND_HELLO:
            return
        self._backend_records.feed(data)
        while self.state is RelayState.WAIT_BACKEND_HELLO:
            peeked = self._backend_records.peek()
            if peeked is None:
                return
            content_type, length = peeked
            frame = self._backend_records.pop(length)
            if frame is None:
                return
            if content_type != ContentType.HANDSHAKE:
                continue  # an alert or CCS: the client sees it as it is
            self._backend_hello.feed(frame[1])
            message = self._backend_hello.pop()
            if message is None:
                continue
            msg_type, body, _raw = message
            hrr = (
                msg_type == HandshakeType.SERVER_HELLO
                and ServerHello.parse(body).is_hello_retry_request
                and not self.hello_retry
            )
            if hrr:
                self.hello_retry = True
                self.state = RelayState.WAIT_SECOND_HELLO
            else:
                self.state = RelayState.RELAY

    def data_to_client(self) -> bytes:
        """Bytes for the client."""
        out = bytes(self._to_client)
        self._to_client.clear()
        return out

    def data_to_backend(self) -> bytes:
        """Bytes for the backend."""
        out = bytes(self._to_backend)
        self._to_backend.clear()
        return out


Connector = Callable[
    [str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
]


async def relay(
    forward: ForwardToBackend,
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    *,
    connect: Connector = asyncio.open_connection,
    chunk: int = 16384,
    idle_timeout: float | None = None,
) -> SplitRelay:
    """Carry out a :class:`ForwardToBackend` over asyncio streams.

    Returns when either side closes, or neither side sent anything for
    ``idle_timeout`` seconds; both connections are closed then.

    Raises:
        OSError: the backend cannot be reached (the client is sent an
            internal_error alert first).
    """
    state = SplitRelay(forward)
    host, port = forward.backend
    try:
        backend_reader, backend_writer = await connect(host, port)
    except OSError:
        client_writer.write(plaintext_alert(AlertDescription.INTERNAL_ERROR))
        await client_writer.drain()
        client_writer.close()
        raise

    async def flush() -> None:
        to_backend = state.data_to_backend()
        if to_backend:
            backend_writer.write(to_backend)
            await backend_writer.drain()
        to_client = state.data_to_client()
        if to_client:
            client_writer.write(to_client)
            await client_writer.drain()

    last_activity = [asyncio.get_running_loop().time()]

    async def pump(reader: asyncio.StreamReader, feed: Callable[[bytes], None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if idle_timeout is None:
                data = await reader.read(chunk)
            else:
                try:
                    data = await asyncio.wait_for(reader.read(chunk), idle_timeout)
                except TimeoutError:
                    # Idle only if the other direction was quiet too.
                    if loop.time() - last_activity[0] >= idle_timeout:
                        return
                    continue
            if not data:
                return
            last_activity[0] = loop.time()
            feed(data)
            await flush()

    try:
        await flush()
        tasks = [
            asyncio.create_task(pump(client_reader, state.client_data)),
            asyncio.create_task(pump(backend_reader, state.backend_data)),
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            error = task.exception()
            if isinstance(error, Alert):
                await flush()
                log.info("split relay to %s:%d failed: %s", host, port, error)
            elif error is not None and not isinstance(error, OSError):
                raise error
    finally:
        for writer in (backend_writer, client_writer):
            writer.close()
    return state
