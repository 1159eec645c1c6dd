"""ECH connections as a standard asyncio ``(StreamReader, StreamWriter)`` pair.

:func:`open_streams` is :func:`asyncio.open_connection` with our TLS and
ECH: code written for asyncio streams keeps its ``readline``/``write``/
``drain``/``close``, and ``writer.get_extra_info("ssl_object")`` answers
``version()``, ``cipher()``, ``selected_alpn_protocol()``,
``getpeercert()`` and ECH's outcome (``ech_status``, ``retried``,
``ech_outcome``).

Built as asyncio's own TLS is (``asyncio.sslproto``): :class:`TLSProtocol`
is the ``asyncio.Protocol`` on the TCP transport that feeds the sans-IO
:class:`~ech.ClientConnection`; it presents an application-side
:class:`TLSTransport` to an ordinary ``asyncio.StreamReaderProtocol``, which
the standard reader and writer sit on. Discovery, strict mode and the one
retry after a rejection (a new TCP connection) are :mod:`ech.dial`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.config import ECHConfigList
from ech.dial import connect_with_retry_async, plan_async
from ech.errors import Alert, ConnectionClosedError, TLSError
from ech.stream import EventStream
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver

__all__ = ["TLSProtocol", "TLSTransport", "open_streams"]

#: asyncio's default StreamReader limit.
_LIMIT = 2**16


class TLSTransport(asyncio.Transport):
    """What the application's protocol writes to: plaintext in, records out."""

    def __init__(self, tls: TLSProtocol) -> None:
        super().__init__()
        self._tls = tls

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send ``data``."""
        self._tls.send(bytes(data))

    def close(self) -> None:
        """Send close_notify and close the TCP connection."""
        self._tls.close()

    def abort(self) -> None:
        """Close the TCP connection at once."""
        self._tls.abort()

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called or the connection is gone."""
        return self._tls.closing

    def can_write_eof(self) -> bool:
        """TLS has close_notify, not half-close: no."""
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        """``ssl_object`` is the connection's state; the rest is the socket's."""
        if name == "ssl_object":
            return self._tls.state
        if name == "server_hostname":
            return self._tls.state.negotiated.server_name
        return self._tls.raw_info(name, default)

    def pause_reading(self) -> None:
        """Flow control: stop reading from the TCP connection."""
        self._tls.raw.pause_reading()

    def resume_reading(self) -> None:
        """Flow control: read again."""
        self._tls.raw.resume_reading()

    def is_reading(self) -> bool:
        """Whether the TCP connection is being read."""
        return self._tls.raw.is_reading()

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None:
        """The TCP transport's limits."""
        self._tls.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        """Bytes of records waiting to be sent."""
        return self._tls.raw.get_write_buffer_size()


class _State(EventStream):
    """A connection's events, handshake and ECH outcome (``ssl_object``)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class TLSProtocol(asyncio.Protocol):
    """The protocol on the TCP transport: records in and out of our connection.

    Args:
        connection: A new client connection (not started).
        app: The application's protocol (a ``StreamReaderProtocol``).
    """

    def __init__(self, connection: ClientConnection, app: asyncio.Protocol) -> None:
        self.state = _State(connection)
        self.app = app
        self.app_transport = TLSTransport(self)
        self.raw: asyncio.Transport
        self.closing = False
        #: The application's protocol was told of the connection, and of
        #: its end: each exactly once, as asyncio promises protocols.
        self._app_connected = False
        self._app_lost = False
        self.handshake_done: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )

    def raw_info(self, name: str, default: object = None) -> object:
        """``get_extra_info`` of the TCP transport."""
        return self.raw.get_extra_info(name, default)

    def _flush(self) -> None:
        data = self.state.connection.data_to_send()
        if data and not self.raw.is_closing():
            self.raw.write(data)

    def _fail(self, error: BaseException) -> None:
        with contextlib.suppress(OSError):
            self._flush()  # the alert queued before the error
        self.closing = True
        self.raw.close()
        if not self.handshake_done.done():
            self.handshake_done.set_exception(error)
        else:
            self._lose(error if isinstance(error, Exception) else None)

    def _lose(self, error: Exception | None) -> None:
        if self._app_connected and not self._app_lost:
            self._app_lost = True
            self.app.connection_lost(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the ClientHello."""
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("TLS runs over a stream transport")
        self.raw = transport
        connection = self.state.connection
        if not isinstance(connection, ClientConnection):
            raise TypeError("a client connection is needed")
        connection.start()
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Records from the server: events, replies, plaintext to the app."""
        self._receive(data)

    def eof_received(self) -> bool:
        """The server closed its side; TLS treats it as the end."""
        self._receive(b"")
        return False

    def _receive(self, data: bytes) -> None:
        state = self.state
        try:
            events = state.connection.receive_data(data)
            self._flush()
            state._absorb(events)
        except (TLSError, OSError) as error:  # Alert, PeerAlert, ECHRejectedError
            self._fail(error)
            return
        if state.handshake is None:
            if state._eof:
                self._fail(ConnectionClosedError("closed during the handshake"))
            return
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)
            self._app_connected = True
            self.app.connection_made(self.app_transport)
        if state._incoming:
            self.app.data_received(state._take(len(state._incoming)))
        if state._eof and not self.closing:
            self.closing = True
            self.app.eof_received()
            self.raw.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone."""
        self.closing = True
        if not self.handshake_done.done():
            self.handshake_done.set_exception(
                exc or ConnectionClosedError("closed during the handshake")
            )
        else:
            self._lose(exc)

    def pause_writing(self) -> None:
        """Flow control, passed to the application's protocol."""
        self.app.pause_writing()

    def resume_writing(self) -> None:
        """Flow control, passed to the application's protocol."""
        self.app.resume_writing()

    def send(self, data: bytes) -> None:
        """Encrypt application data and send it."""
        if self.closing:
            raise ConnectionClosedError("the TLS connection is closing")
        try:
            self.state.connection.send(data)
        except Alert as error:
            self._fail(error)
            raise
        self._flush()

    def close(self) -> None:
        """close_notify, then close the TCP connection."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(TLSError):
            self.state.connection.close()
            self._flush()
        self.raw.close()

    def abort(self) -> None:
        """Close the TCP connection without close_notify."""
        self.closing = True
        self.raw.abort()


async def open_streams(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str | None = None,
    *,
    session: SessionTicket | None = None,
    ech_configs: ECHConfigList | None = None,
    ech_retry: bool = True,
    resolver: DoHResolver | None = None,
    require_ech: bool = False,
    limit: int = _LIMIT,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect with TLS 1.3 and ECH; an asyncio reader and writer.

    The arguments are :func:`ech.aio.open_connection`'s (same discovery,
    GREASE, strict mode and one retry, :mod:`ech.dial`), plus ``limit``,
    the reader's buffer limit as in :func:`asyncio.open_connection`. The
    handshake is complete when this returns.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
        ECHUnavailableError: ECH was promised or required and cannot be
            offered; nothing was sent.
        DNSLookupError: the resolver failed.
        Alert, PeerAlert, ConnectionClosedError: the handshake failed.
    """
    name = server_name or host
    plan = await plan_async(
        config,
        name,
        port,
        ech_configs=ech_configs,
        resolver=resolver,
        ech_retry=ech_retry,
        require_ech=require_ech,
    )
    loop = asyncio.get_running_loop()

    async def once(config: ClientConfig, configs: ECHConfigList | None) -> _State:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        app = asyncio.StreamReaderProtocol(reader, loop=loop)
        connection = ClientConnection(
            config, name, session=session, ech_configs=configs
        )
        tls = TLSProtocol(connection, app)
        await loop.create_connection(lambda: tls, host, port)
        try:
            await tls.handshake_done
        except BaseException:
            tls.abort()
            raise
        tls.state.reader = reader
        tls.state.writer = asyncio.StreamWriter(tls.app_transport, app, reader, loop)
        return tls.state

    state = await connect_with_retry_async(plan, once)
    return state.reader, state.writer
