"""A TLS connection over an asyncio stream pair: the same pump as ech.blocking."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from ech.aio.limits import ConnectionTimeoutError
from ech.errors import Alert, ConnectionClosedError, PeerAlert, TLSError
from ech.events import HandshakeComplete
from ech.server.events import ForwardToBackend
from ech.stream import EventStream
from ech.tls.connection import Connection
from ech.tls.enums import AlertDescription

__all__ = ["TLSStream"]

T = TypeVar("T")

_READ_SIZE = 65536


class TLSStream(EventStream):
    """A TLS connection over an asyncio stream pair.

    Args:
        reader, writer: the connected streams.
        connection: a new client or server connection.
        read_size: most bytes taken per read.

    Attributes:
        io_timeout: seconds a read or write may wait (None: no limit); the
            server sets its idle timeout here after the handshake.
        timed_out: a read or write exceeded ``io_timeout``.
        alert_sent: the fatal alert sent, if any, for the server's
            connection report.
        alert_received: the fatal alert received, if any, likewise.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
        *,
        read_size: int = _READ_SIZE,
    ) -> None:
        super().__init__(connection)
        self.reader = reader
        self.writer = writer
        self.io_timeout: float | None = None
        self.timed_out = False
        self.alert_sent: AlertDescription | None = None
        self.alert_received: AlertDescription | None = None
        self._read_size = read_size

    async def _io(self, awaitable: Awaitable[T]) -> T:
        if self.io_timeout is None:
            return await awaitable
        try:
            async with asyncio.timeout(self.io_timeout):
                return await awaitable
        except TimeoutError:
            self.timed_out = True
            raise ConnectionTimeoutError(
                f"idle for {self.io_timeout:g} s, closing"
            ) from None

    async def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            self.writer.write(data)
            await self._io(self.writer.drain())

    async def _pump(self) -> None:
        data = await self._io(self.reader.read(self._read_size))
        try:
            events = self.connection.receive_data(data)
        except BaseException as error:
            if isinstance(error, Alert):
                self.alert_sent = error.description
            elif isinstance(error, Exception) and not isinstance(error, TLSError):
                self.alert_sent = AlertDescription.INTERNAL_ERROR
            # Send the queued alert; a peer that hung up must not hide the error.
            with contextlib.suppress(OSError, ConnectionError, TLSError):
                await self._flush()
            raise
        await self._flush()
        try:
            self._absorb(events)
        except PeerAlert as alert:
            self.alert_received = alert.description
            raise

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
