"""A TLS connection over an asyncio stream pair: the same pump as ech.blocking.

**Writes are coalesced.** What the connection queues goes to the
transport in as few writes as is correct, each a ``send()`` system call
and a TCP segment: before the stream waits for the peer (the flights of
the handshake, a reply to a KeyUpdate), at close (with close_notify), at
once when much is queued, and otherwise at the end of the current
event-loop step. So the NewSessionTicket a server issues at the end of
the handshake (RFC 8446 §4.6.1) leaves with the first response, and the
last response with close_notify (§6.1), when they come in the same step;
nothing queued ever waits for the peer, or for longer than that step.

**Waits are timed with as few timers as possible.** ``io_timeout`` bounds
each read or write, ``deadline`` (the server's handshake timeout) all of
them together. Over a :class:`~ech.aio.tcp.TCPConnection` (the server's)
a read is timed by the connection's one timer, re-armed only when a wait
must end sooner than it fires; an ``asyncio.timeout`` is only made for
what else may wait (a drain, another reader).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Final, TypeVar

from ech.aio.limits import ConnectionTimeoutError
from ech.aio.tcp import StreamReader, StreamWriter, TCPConnection
from ech.errors import Alert, ConnectionClosedError, PeerAlert, TLSError
from ech.events import HandshakeComplete
from ech.server.events import ForwardToBackend
from ech.stream import EventStream
from ech.tls.connection import Connection
from ech.tls.enums import AlertDescription

__all__ = ["TLSStream"]

T = TypeVar("T")

_READ_SIZE = 65536

#: Application bytes queued by :meth:`TLSStream.send` past which they are
#: written at once, so that a sender that never yields still meets the
#: transport's flow control.
_COALESCE_LIMIT: Final = 65536


class TLSStream(EventStream):
    """A TLS connection over an asyncio stream pair.

    Args:
        reader, writer: the connected streams: asyncio's, or one
            :class:`~ech.aio.tcp.TCPConnection` as both (the server's).
        connection: a new client or server connection.
        read_size: most bytes taken per read.

    Attributes:
        io_timeout: seconds a read or write may wait (None: no limit); the
            server sets its idle timeout here after the handshake.
        deadline: event-loop time by which every wait must be over (None:
            no limit), whatever ``io_timeout`` says; one past it raises
            ``TimeoutError``. The server's handshake timeout.
        timed_out: a read or write exceeded ``io_timeout``.
        alert_sent: the fatal alert sent, if any, for the server's
            connection report.
        alert_received: the fatal alert received, if any, likewise.
    """

    def __init__(
        self,
        reader: StreamReader,
        writer: StreamWriter,
        connection: Connection,
        *,
        read_size: int = _READ_SIZE,
    ) -> None:
        super().__init__(connection)
        self.reader = reader
        self.writer = writer
        self.io_timeout: float | None = None
        self.deadline: float | None = None
        self.timed_out = False
        self.alert_sent: AlertDescription | None = None
        self.alert_received: AlertDescription | None = None
        self._read_size = read_size
        #: Application bytes queued since the last write (send()).
        self._unsent = 0
        self._write_scheduled = False

    def _timed_out(self) -> ConnectionTimeoutError:
        self.timed_out = True
        return ConnectionTimeoutError(f"idle for {self.io_timeout:g} s, closing")

    def _wait_until(self) -> float | None:
        """When a wait that begins now must end, or None: no limit.

        The sooner of ``io_timeout`` from now and ``deadline``.
        """
        deadline, timeout = self.deadline, self.io_timeout
        if timeout is None:
            return deadline
        idle = asyncio.get_running_loop().time() + timeout
        return idle if deadline is None or idle < deadline else deadline

    def _expired(self, until: float) -> Exception:
        """The error for a wait that lasted until ``until``.

        ``TimeoutError`` at the ``deadline``, else (idle)
        :class:`ConnectionTimeoutError`.
        """
        return TimeoutError() if until == self.deadline else self._timed_out()

    async def _io(self, awaitable: Awaitable[T]) -> T:
        until = self._wait_until()
        if until is None:
            return await awaitable
        try:
            async with asyncio.timeout_at(until):
                return await awaitable
        except TimeoutError:
            raise self._expired(until) from None

    def _write(self) -> None:
        """Hand everything the connection has queued to the transport."""
        self._unsent = 0
        data = self.connection.data_to_send()
        if data:
            self.writer.write(data)

    async def _drain(self) -> None:
        """Wait while the transport holds too much; raise if it was lost.

        A transport that holds nothing (the usual case) is not waited for:
        that would cost a timeout per write for nothing.
        """
        transport = self.writer.transport
        if transport.get_write_buffer_size() or transport.is_closing():
            await self._io(self.writer.drain())

    async def _flush(self) -> None:
        """Write what is queued now, then :meth:`_drain`."""
        self._write()
        await self._drain()

    def _write_soon(self) -> None:
        """Write what is queued at the end of this event-loop step."""
        if not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_write)

    def _scheduled_write(self) -> None:
        self._write_scheduled = False
        if not self.writer.transport.is_closing():
            self._write()

    async def _pump(self) -> None:
        await self._flush()  # nothing of ours waits while we wait for the peer
        reader, size = self.reader, self._read_size
        if isinstance(reader, TCPConnection):
            until = self._wait_until()
            try:
                data = await reader.read(size, until)  # its own, cheaper timer
            except TimeoutError:
                if until is None:
                    raise  # the connection was lost with this error
                raise self._expired(until) from None
        else:
            data = await self._io(reader.read(size))
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
        try:
            self._absorb(events)
        except TLSError as error:  # PeerAlert, ECHRejectedError (ech_required queued)
            if isinstance(error, PeerAlert):
                self.alert_received = error.description
            with contextlib.suppress(OSError, ConnectionError, TLSError):
                await self._flush()
            raise

    async def do_handshake(self) -> HandshakeComplete | ForwardToBackend:
        """Run the handshake to completion, as ``TLSSocket.do_handshake`` does.

        A split-mode server returns the :class:`ForwardToBackend` instead
        when the hello belongs to a backend (see :mod:`ech.server.split`).
        What the handshake queued last (a server's session tickets, a
        client's Finished) leaves with this step's first write, or at its
        end (see the module docstring).
        """
        while self.handshake is None:
            if self.forward is not None:
                await self._flush()
                return self.forward
            if self._eof:
                raise ConnectionClosedError("connection closed during the handshake")
            await self._pump()
        self._write_soon()
        return self.handshake

    async def recv(self, max_bytes: int = _READ_SIZE) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` once the peer closed."""
        while not self._incoming and not self._eof:
            await self._pump()
        return self._take(max_bytes)

    async def send(self, data: bytes) -> None:
        """Send application data.

        It is written with whatever else this event-loop step queues (more
        data, close_notify), at the step's end at the latest; at once past
        64 KiB (see the module docstring).
        """
        self.connection.send(data)
        self._unsent += len(data)
        if self._unsent >= _COALESCE_LIMIT:
            await self._flush()
        else:
            self._write_soon()
            await self._drain()  # flow control on what earlier steps wrote

    def close_soon(self) -> None:
        """Queue close_notify, write it, and close the transport (RFC 8446 §6.1).

        Whatever else is queued leaves in the same write. The transport
        sends all it holds before it closes, so nothing here waits: a
        caller that must know when it is over awaits
        ``writer.wait_closed()`` (as :meth:`close` does), one that only
        bounds it aborts the transport at its deadline (the server).
        """
        try:
            self.connection.close()
            with contextlib.suppress(OSError, ConnectionError):
                self._write()
        finally:
            self.writer.close()

    async def close(self) -> None:
        """Send close_notify, close the transport and wait until it is closed."""
        self.close_soon()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
