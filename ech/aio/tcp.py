"""One accepted TCP connection, as the asyncio server's :class:`TLSStream` uses it.

:class:`TCPConnection` is what ``asyncio.start_server`` makes of each
connection (a ``StreamReaderProtocol`` with its ``StreamReader`` and
``StreamWriter``), in one slotted object that serves as both the reader
and the writer of a :class:`~ech.aio.stream.TLSStream`. It keeps their
semantics (the same flow control both ways, the same errors) and drops
what the server never uses: the three objects, their back-references, a
done-callback per connection, and a deque, a future and a buffer allocated
before anything is read. A waiting connection holds a few hundred bytes
here instead of some two kilobytes; each is a connection that is only
waiting (issue #14 measures 16 KiB per idle connection in all).

:class:`StreamReader` and :class:`StreamWriter` are the parts of asyncio's
two classes that :class:`TLSStream` and the split-mode relay use, so
either kind of stream fits them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["StreamReader", "StreamWriter", "TCPConnection"]


class StreamReader(Protocol):
    """What is read from: an ``asyncio.StreamReader`` or a :class:`TCPConnection`."""

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes once at least one is there; ``b""`` at the end."""
        ...

    def at_eof(self) -> bool:
        """Whether the peer ended and everything it sent was read."""
        ...


class StreamWriter(Protocol):
    """What is written to: an ``asyncio.StreamWriter`` or a :class:`TCPConnection`."""

    @property
    def transport(self) -> asyncio.WriteTransport:
        """The TCP transport."""
        ...

    def write(self, data: bytes) -> None:
        """Queue ``data`` on the transport."""

    async def drain(self) -> None:
        """Wait while the transport holds too much; raise if it was lost."""

    def close(self) -> None:
        """Close the transport once its buffer is sent."""

    def is_closing(self) -> bool:
        """Whether the transport is closed or closing."""
        ...

    async def wait_closed(self) -> None:
        """Wait until the connection is gone."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        """The transport's ``get_extra_info``: ``peername``, ``socket``..."""


class TCPConnection(asyncio.Protocol):
    """An accepted TCP connection: bytes in a buffer, a waiter, flow control.

    Args:
        limit: the buffer size: reading from the socket stops once twice
            this much is buffered and resumes at this much, as
            ``asyncio.StreamReader(limit=...)`` does.
        on_connect: called with this object once its transport is set.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_deadline",
        "_drain_waiters",
        "_eof",
        "_error",
        "_limit",
        "_lost",
        "_on_connect",
        "_reading_paused",
        "_timer",
        "_waiter",
        "_writing_paused",
        "transport",
    )

    transport: asyncio.Transport

    def __init__(self, limit: int, on_connect: Callable[[TCPConnection], None]) -> None:
        self._limit = limit
        self._on_connect: Callable[[TCPConnection], None] | None = on_connect
        #: Received, not yet read: the bytes object as the transport gave
        #: it while there is one, a bytearray once more arrive.
        self._buffer: bytes | bytearray = b""
        self._eof = False
        #: The error that lost the connection, raised by reads and drains.
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: When the read waiting now times out, and the one timer that
        #: checks it (see :meth:`read`).
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._lost = False
        self._closed: asyncio.Future[None] | None = None

    # asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; tell ``on_connect``."""
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("TCP runs over a stream transport")
        self.transport = transport
        on_connect, self._on_connect = self._on_connect, None
        if on_connect is not None:
            on_connect(self)

    def data_received(self, data: bytes) -> None:
        """Buffer ``data``; pause reading past twice the limit."""
        if not data:
            return
        buffered = self._buffer
        if not buffered:
            self._buffer = data
        elif isinstance(buffered, bytearray):
            buffered += data
        else:
            self._buffer = bytearray(buffered) + data
        _wake(self._waiter)
        if not self._reading_paused and len(self._buffer) > 2 * self._limit:
            self.transport.pause_reading()
            self._reading_paused = True

    def eof_received(self) -> bool:
        """The peer will send nothing more; we may still write (half-close)."""
        self._eof = True
        _wake(self._waiter)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake whoever waits: reads end (or raise ``exc``), drains return."""
        self._lost = True
        self._eof = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is not None:
            self._error = exc
        _wake(self._waiter, exc)
        for waiter in self._drain_waiters or ():
            _wake(waiter, exc)
        _wake(self._closed, exc)

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The transport's buffer is back under its low-water mark."""
        self._writing_paused = False
        for waiter in self._drain_waiters or ():
            _wake(waiter)

    # the reader ----------------------------------------------------------------------

    async def read(self, n: int = -1, deadline: float | None = None) -> bytes:
        """Up to ``n`` bytes once at least one is there; ``b""`` at the end.

        ``deadline`` (event-loop time) bounds the wait, as
        ``asyncio.timeout_at`` around ``StreamReader.read`` would, but with
        one timer per connection instead of a timeout and a timer per
        read: each wait only moves the deadline, and the timer, when it
        fires early, re-arms itself for the deadline now due. A read that
        does not wait costs nothing.

        Raises:
            TimeoutError: no byte came by ``deadline``.
            OSError: the connection was lost with that error.
            RuntimeError: another task is already waiting in :meth:`read`.
            ValueError: ``n`` is not positive (read everything: not needed).
        """
        if n <= 0:
            raise ValueError("read() needs a positive size")
        if self._error is not None:
            raise self._error
        if not self._buffer and not self._eof:
            if self._waiter is not None:
                raise RuntimeError("read() called while another task is reading")
            if self._reading_paused:  # waiting while paused would never end
                self._reading_paused = False
                self.transport.resume_reading()
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            if deadline is not None:
                self._wait_until(loop, deadline)
            try:
                await self._waiter
            finally:
                self._waiter = None
        buffered = self._buffer
        if len(buffered) <= n:
            self._buffer = b""
            data = bytes(buffered) if isinstance(buffered, bytearray) else buffered
        else:
            if not isinstance(buffered, bytearray):
                buffered = self._buffer = bytearray(buffered)
            data = bytes(buffered[:n])
            del buffered[:n]
        if self._reading_paused and len(self._buffer) <= self._limit:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def _wait_until(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is not None and timer.when() <= deadline:
            return  # it fires first, and re-arms itself for this deadline
        if timer is not None:
            timer.cancel()
        self._timer = loop.call_at(deadline, self._deadline_passed)

    def _deadline_passed(self) -> None:
        timer, self._timer = self._timer, None
        waiter = self._waiter
        if timer is None or waiter is None or waiter.done():
            return  # not waiting: the next wait arms a timer
        if self._deadline <= timer.when():
            waiter.set_exception(TimeoutError())
        else:  # the wait began after this timer was armed
            self._timer = asyncio.get_running_loop().call_at(
                self._deadline, self._deadline_passed
            )

    def at_eof(self) -> bool:
        """Whether the peer ended and everything it sent was read."""
        return self._eof and not self._buffer

    # the writer ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` on the transport."""
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport holds too much, as ``StreamWriter.drain``.

        Raises:
            OSError: the connection was lost with that error, or
                ``ConnectionResetError`` when it is gone.
        """
        if self._error is not None:
            raise self._error
        if self.transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost() run first
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._drain_waiters
        if waiters is None:
            waiters = self._drain_waiters = []
        waiters.append(waiter)
        try:
            await waiter
        finally:
            waiters.remove(waiter)

    def close(self) -> None:
        """Close the transport once its buffer is sent."""
        self.transport.close()

    def is_closing(self) -> bool:
        """Whether the transport is closed or closing."""
        return self.transport.is_closing()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone (its error, if it had one)."""
        if self._lost:
            if self._error is not None:
                raise self._error
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await self._closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        """The transport's ``get_extra_info``: ``peername``, ``socket``..."""
        return self.transport.get_extra_info(name, default)


def _wake(waiter: asyncio.Future[None] | None, exc: Exception | None = None) -> None:
    """Wake whoever awaits ``waiter``: with ``exc`` raised, if given."""
    if waiter is not None and not waiter.done():
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)
