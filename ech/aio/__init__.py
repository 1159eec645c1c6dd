"""asyncio adapter: the same pump as :mod:`ech.blocking`, on streams."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

from ech.aio.relay import relay
from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.config import ECHConfigList
from ech.errors import ConnectionClosedError, ECHRejectedError
from ech.events import HandshakeComplete
from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection
from ech.server.events import ForwardToBackend
from ech.stream import EventStream
from ech.tls.connection import Connection
from ech.tls.session import SessionTicket

_READ_SIZE = 65536


class TLSStream(EventStream):
    """A TLS connection over an asyncio stream pair."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
    ) -> None:
        super().__init__(connection)
        self.reader = reader
        self.writer = writer

    async def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _pump(self) -> None:
        data = await self.reader.read(_READ_SIZE)
        try:
            events = self.connection.receive_data(data)
        except BaseException:
            # Send the queued alert; a peer that hung up must not hide the error.
            with contextlib.suppress(OSError, ConnectionError):
                await self._flush()
            raise
        await self._flush()
        self._absorb(events)

    async def do_handshake(self) -> HandshakeComplete | ForwardToBackend:
        """Run the handshake to completion, as ``TLSSocket.do_handshake`` does.

        A split-mode server returns the :class:`ForwardToBackend` instead
        when the hello belongs to a backend (see :mod:`ech.server.split`).
        """
        await self._flush()
        while self.handshake is None:
            if self.forward is not None:
                return self.forward
            if self._eof:
                raise ConnectionClosedError("connection closed during the handshake")
            await self._pump()
        return self.handshake

    async def recv(self, max_bytes: int = _READ_SIZE) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` once the peer closed."""
        while not self._incoming and not self._eof:
            await self._pump()
        return self._take(max_bytes)

    async def send(self, data: bytes) -> None:
        """Send application data."""
        self.connection.send(data)
        await self._flush()

    async def close(self) -> None:
        """Send close_notify and close the transport."""
        try:
            self.connection.close()
            await self._flush()
        except (OSError, ConnectionError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()


async def open_connection(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str | None = None,
    *,
    session: SessionTicket | None = None,
    ech_configs: ECHConfigList | None = None,
    ech_retry: bool = True,
) -> TLSStream:
    """Connect and complete a TLS 1.3 handshake as a client.

    ECH and its one retry work as in :func:`ech.blocking.connect`.
    """
    name = server_name or host
    try:
        return await _open_once(host, port, config, name, session, ech_configs)
    except ECHRejectedError as rejection:
        if not (ech_retry and rejection.can_retry):
            raise
        stream = await _open_once(
            host, port, config, name, session, rejection.retry_configs
        )
        stream.retried = True
        stream.retry_configs = rejection.retry_configs
        return stream


async def _open_once(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str,
    session: SessionTicket | None,
    ech_configs: ECHConfigList | None,
) -> TLSStream:
    reader, writer = await asyncio.open_connection(host, port)
    connection = ClientConnection(
        config, server_name, session=session, ech_configs=ech_configs
    )
    stream = TLSStream(reader, writer, connection)
    try:
        connection.start()
        await stream.do_handshake()
    except BaseException:
        writer.write(connection.data_to_send())
        writer.close()
        raise
    return stream


async def start_server(
    handler: Callable[[TLSStream], Awaitable[None]],
    host: str | None,
    port: int | None,
    config: ServerConfig | Callable[[], ServerConfig],
    *,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Serve TLS 1.3: ``handler`` gets each stream after its handshake.

    ``config`` may be a callable returning the current configuration, read
    once per connection: that is how keys rotate without a restart. With
    ``sock``, serve on that bound socket and ignore ``host`` and ``port``.
    Handshake failures close that connection (the alert was sent) and never
    reach ``handler``.
    """

    async def on_connect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        current = config() if callable(config) else config
        stream = TLSStream(reader, writer, ServerConnection(current))
        try:
            outcome = await stream.do_handshake()
        except Exception:
            writer.close()
            return
        if isinstance(outcome, ForwardToBackend):
            with contextlib.suppress(OSError):
                await relay(outcome, reader, writer)
            return
        try:
            await handler(stream)
        finally:
            await stream.close()

    if sock is not None:
        return await asyncio.start_server(on_connect, sock=sock)
    return await asyncio.start_server(on_connect, host, port)
