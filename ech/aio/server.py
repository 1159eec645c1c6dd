"""The asyncio TLS server: accept, limit, handshake, hand over, close.

:class:`Server` accepts TCP connections (each a
:class:`~ech.aio.tcp.TCPConnection`, refused at once when over a limit) and
runs one TLS 1.3 server connection each, in a task of its own, through
:meth:`Server.handle_connection`: take the current
:class:`ServerConfig` from the config provider, build a
:class:`ServerConnection`, handshake under the handshake timeout, then
give the stream to the handler under the idle timeout, or, in split mode,
relay it to its backend (:func:`ech.aio.relay.relay`); close it and report
it to the :class:`~ech.aio.report.Observer`. See :mod:`ech.aio.limits` for
the limits.

``ServerConfig.require_ech`` is enforced by the server connection itself
(it refuses a protected name reached without ECH with
``unrecognized_name`` before its flight exists); such connections end
``require_ech``.

:meth:`Server.shutdown` stops listening, lets open connections finish
within a deadline, then closes the rest.

:func:`start_server` is the short form for a handler and a config.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from ech.aio.limits import (
    AddressCounts,
    ConnectionTimeoutError,
    Limits,
    address_key,
)
from ech.aio.relay import relay
from ech.aio.report import ConnectionReport, Observer
from ech.aio.stream import TLSStream
from ech.aio.tcp import StreamReader, StreamWriter, TCPConnection
from ech.errors import (
    Alert,
    ConnectionClosedError,
    MessageTooLong,
    PeerAlert,
    TLSError,
)
from ech.events import ConnectionClosed, ECHStatus, HandshakeComplete
from ech.http.errors import RequestHeadTimeout
from ech.server.config import ServerConfig
from ech.server.connection import NameRequiresECH, ServerConnection
from ech.server.events import ForwardToBackend
from ech.tls.enums import AlertDescription

__all__ = ["CLOSE_TIMEOUT", "Handler", "Server", "start_server"]

#: Bugs (an exception no connection should raise) are logged here with
#: their traceback, as asyncio logs an unhandled exception; everything
#: else is reported to the observer.
log = logging.getLogger("ech.aio.server")

#: Gets each stream once its handshake is complete (the status page, DoH).
Handler = Callable[[TLSStream], Awaitable[None]]

#: How long closing a connection may take before the transport is aborted.
CLOSE_TIMEOUT: Final = 2.0


@dataclass(slots=True)
class _Record:
    """What is known so far of one connection's outcome."""

    peer: str
    started: float
    outcome: str = "completed"
    error: str | None = None
    handshake_seconds: float | None = None
    backend: str | None = None


def _peer(writer: StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def _client_address(writer: StreamWriter) -> str:
    """The key the per-address limit counts this client under."""
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and address:
        return address_key(str(address[0]))
    return str(address)


class Server:
    """Accepts connections and runs :meth:`handle_connection` for each.

    Args:
        config: the server configuration, or a provider called once per
            connection (``ech serve``'s keyring), which is how keys rotate.
        handler: gets each stream after its handshake; the server closes
            the stream when it returns.
        limits: per-connection limits.
        observer: told of each connection (nothing is logged or counted
            without one).
    """

    def __init__(
        self,
        config: ServerConfig | Callable[[], ServerConfig],
        handler: Handler,
        *,
        limits: Limits | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._provider: Callable[[], ServerConfig] = (
            config if callable(config) else (lambda: config)
        )
        self.handler = handler
        self.limits = limits or Limits()
        self.observer = observer or Observer()
        self.server: asyncio.Server | None = None
        #: Each connection's task, and the client address it counts under.
        self._connections: dict[asyncio.Task[None], str] = {}
        self._per_address = AddressCounts(self.limits.per_address)
        self._closing = False
        self._limited_source: ServerConfig | None = None
        self._limited_config: ServerConfig | None = None

    @property
    def open_connections(self) -> int:
        """Connections being handled now."""
        return len(self._connections)

    async def start(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
    ) -> asyncio.Server:
        """Listen on ``host``:``port``, or on the bound ``sock``.

        Raises:
            ValueError: neither a port nor a socket.
            OSError: the address cannot be listened on.
        """
        loop = asyncio.get_running_loop()
        limit = self.limits.buffer_size

        def accepted() -> TCPConnection:
            return TCPConnection(limit, self._on_connect)

        if sock is not None:
            server = await loop.create_server(accepted, sock=sock)
        elif port is None:
            raise ValueError("give a port or a bound socket")
        else:
            server = await loop.create_server(accepted, host, port)
        self.server = server
        return server

    def _refusal(self, client: str) -> str | None:
        """Why a new connection from ``client`` is closed at once, or None.

        None counts the connection against its address.
        """
        if self._closing:
            return "shutting_down"
        if len(self._connections) >= self.limits.max_connections:
            return "over_capacity"
        if not self._per_address.take(client):
            return "per_address"
        return None

    def _on_connect(self, tcp: TCPConnection) -> None:
        """A new connection: refuse it at once, or start its task.

        The task runs :meth:`handle_connection`; its end, however it ends
        (even cancelled before it started), gives its slot back.
        """
        client = _client_address(tcp)
        reason = self._refusal(client)
        if reason is not None:
            tcp.transport.abort()
            self.observer.connection_refused(_peer(tcp), reason)
            return
        task = asyncio.get_running_loop().create_task(self.handle_connection(tcp, tcp))
        self._connections[task] = client
        task.add_done_callback(self._connection_done)
        self.observer.open_connections(len(self._connections))

    def _connection_done(self, task: asyncio.Task[None]) -> None:
        self._per_address.give_back(self._connections.pop(task))
        self.observer.open_connections(len(self._connections))
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("connection failed unexpectedly", exc_info=error)

    def _limited(self, config: ServerConfig) -> ServerConfig:
        """``config`` with our ClientHello limit, made once per config object."""
        limited = self._limited_config
        if config is not self._limited_source or limited is None:
            limited = dataclasses.replace(
                config, max_client_hello=self.limits.max_client_hello
            )
            self._limited_source, self._limited_config = config, limited
        return limited

    def new_stream(
        self, reader: StreamReader, writer: StreamWriter
    ) -> tuple[TLSStream, ServerConnection]:
        """A stream over a new ServerConnection built from the current config."""
        connection = ServerConnection(self._limited(self._provider()))
        stream = TLSStream(
            reader, writer, connection, read_size=self.limits.buffer_size
        )
        return stream, connection

    async def handle_connection(
        self, reader: StreamReader, writer: StreamWriter
    ) -> None:
        """One connection: the per-connection hook.

        Builds the stream from the current config (:meth:`new_stream`), runs
        the handshake under the handshake timeout, then hands the stream to
        the handler under the idle timeout, or, in split mode, to
        :meth:`forward`; closes it (aborting a transport that does not
        drain), and reports it. Never raises, except CancelledError when
        shutdown gives up on the connection.
        """
        record = _Record(_peer(writer), time.monotonic())
        stream, connection = self.new_stream(reader, writer)
        handshaken = False
        try:
            result = await self._handshake(stream, record)
            if isinstance(result, ForwardToBackend):
                await self.forward(stream, result, record)
            elif result is not None:
                handshaken = True
                # The handler's frame directly under this one: a waiting
                # connection keeps no frame between them.
                stream.io_timeout = self.limits.idle_timeout
                try:
                    await self.handler(stream)
                except Exception as error:
                    _handler_failed(record, error)
                if stream.timed_out:
                    record.outcome = "idle_timeout"
        except asyncio.CancelledError:
            record.outcome = "shutdown"
            raise
        finally:
            try:
                await self._close(stream, handshaken)
            finally:
                self.observer.connection_closed(_report(record, stream, connection))

    async def _handshake(
        self, stream: TLSStream, record: _Record
    ) -> HandshakeComplete | ForwardToBackend | None:
        # A deadline on the stream, not an asyncio.timeout: its reads are
        # timed by the connection's one timer (ech.aio.stream).
        now = asyncio.get_running_loop().time()
        stream.deadline = now + self.limits.handshake_timeout
        try:
            result = await stream.do_handshake()
        except TimeoutError:
            record.outcome = "handshake_timeout"
            record.error = f"no handshake in {self.limits.handshake_timeout:g} s"
        except NameRequiresECH as refused:
            record.outcome, record.error = "require_ech", str(refused)
        except MessageTooLong as refused:  # ServerConfig.max_client_hello
            record.outcome, record.error = "client_hello_too_large", str(refused)
        except Alert as alert:
            record.outcome, record.error = "handshake_failed", str(alert)
        except PeerAlert as alert:
            record.outcome, record.error = "peer_alert", str(alert)
        except (ConnectionClosedError, OSError, ConnectionError) as error:
            record.outcome, record.error = "peer_closed", str(error) or "closed"
        except Exception as error:  # our bug: keep serving the others
            log.error("handshake failed unexpectedly", exc_info=True)
            record.outcome = "internal_error"
            record.error = f"{type(error).__name__}: {error}"
        else:
            stream.deadline = None
            if isinstance(result, ForwardToBackend):
                return result
            record.handshake_seconds = time.monotonic() - record.started
            self.observer.handshake_completed(
                record.peer, result, record.handshake_seconds
            )
            return result
        return None

    async def forward(
        self, stream: TLSStream, forward: ForwardToBackend, record: _Record
    ) -> None:
        """Split mode: relay the connection to its backend (RFC 9849 §3.1).

        ECH was accepted for a name in ``ServerConfig.backends``; records
        pass both ways unchanged (:func:`ech.aio.relay.relay`) until
        either side closes or stays silent for the idle timeout.
        """
        record.outcome = "forwarded"
        record.backend = f"{forward.backend[0]}:{forward.backend[1]}"
        try:
            await relay(
                forward,
                stream.reader,
                stream.writer,
                idle_timeout=self.limits.idle_timeout,
            )
        except OSError as error:
            record.outcome, record.error = "backend_unreachable", str(error)
            stream.alert_sent = AlertDescription.INTERNAL_ERROR

    async def _close(self, stream: TLSStream, handshaken: bool) -> None:
        """Close the connection: close_notify after a handshake, then the transport.

        A transport with nothing left to send is closed at the end of this
        event-loop step, so only one that still holds data is waited for,
        and aborted if it does not drain within :data:`CLOSE_TIMEOUT`.
        """
        writer = stream.writer
        transport = writer.transport
        try:
            if handshaken and not stream.timed_out:
                stream.close_soon()  # close_notify, with all else queued
            else:
                writer.close()
            if not transport.get_write_buffer_size():
                return
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (TimeoutError, OSError, ConnectionError):
            transport.abort()
        except BaseException:
            transport.abort()
            raise

    async def shutdown(
        self, timeout: float | None = None, *, now: asyncio.Event | None = None
    ) -> int:
        """Stop accepting, wait for open connections, then close the rest.

        Args:
            timeout: seconds to wait (default ``limits.shutdown_timeout``).
            now: set to stop waiting early (a second signal).

        Returns:
            How many connections had to be closed.
        """
        self._closing = True
        if self.server is not None:
            self.server.close()
        if timeout is None:
            timeout = self.limits.shutdown_timeout
        pending = set(self._connections)
        if pending:
            waiters: set[asyncio.Future[object]] = {
                asyncio.ensure_future(asyncio.wait(pending))
            }
            if now is not None:
                waiters.add(asyncio.ensure_future(now.wait()))
            await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
            pending = {task for task in pending if not task.done()}
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT + 1)
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.server.wait_closed()
        return len(pending)


def _handler_failed(record: _Record, error: Exception) -> None:
    """Record why the handler ended with ``error``."""
    if isinstance(error, RequestHeadTimeout):  # ech.http's deadline
        record.outcome, record.error = "request_head_timeout", str(error)
    elif isinstance(error, ConnectionTimeoutError):
        record.error = str(error)
    elif isinstance(error, PeerAlert):
        record.outcome, record.error = "peer_alert", str(error)
    elif isinstance(error, Alert):
        record.outcome, record.error = "failed", str(error)
    elif isinstance(error, TLSError | OSError | ConnectionError):
        record.error = f"{type(error).__name__}: {error}"
    else:
        log.error("application failed", exc_info=error)
        record.outcome = "internal_error"
        record.error = f"{type(error).__name__}: {error}"


def _report(
    record: _Record, stream: TLSStream, connection: ServerConnection
) -> ConnectionReport:
    """The connection's report, from the record and the connection's state."""
    alert_received = stream.alert_received
    for event in stream.events:
        if (
            isinstance(event, ConnectionClosed)
            and event.alert is not None
            and event.alert != AlertDescription.CLOSE_NOTIFY
        ):
            alert_received = event.alert
    seen_hello = (
        connection.client_hello is not None
        or connection.ech_status is not ECHStatus.NOT_OFFERED
    )
    return ConnectionReport(
        peer=record.peer,
        outcome=record.outcome,
        error=record.error,
        ech_status=connection.ech_status if seen_hello else None,
        outer_server_name=connection.outer_server_name,
        server_name=connection.server_name,
        cipher_suite=connection.cipher_suite,
        group=connection.group,
        alpn=connection.alpn_protocol,
        resumed=connection.resumed,
        hello_retry=connection.hello_retry,
        backend=record.backend,
        handshake_seconds=record.handshake_seconds,
        duration_seconds=time.monotonic() - record.started,
        alert_sent=stream.alert_sent,
        alert_received=alert_received,
        ech_reason=connection.ech_reason,
        early_data=connection.early_data_status if seen_hello else None,
        client_certificate_subject=(
            stream.handshake.client_certificate_subject if stream.handshake else None
        ),
    )


async def start_server(
    handler: Handler,
    host: str | None,
    port: int | None,
    config: ServerConfig | Callable[[], ServerConfig],
    *,
    sock: socket.socket | None = None,
    limits: Limits | None = None,
    observer: Observer | None = None,
) -> asyncio.Server:
    """Serve TLS 1.3: ``handler`` gets each stream after its handshake.

    A :class:`Server` with ``limits`` (the defaults of :class:`Limits` if
    None) and ``observer``, listening on ``host``:``port`` or, with
    ``sock``, on that bound socket. ``config`` may be a callable returning
    the current configuration, read once per connection: that is how keys
    rotate without a restart. Handshake failures close that connection
    (the alert was sent) and never reach ``handler``; split-mode hellos
    are relayed to their backend.
    """
    server = Server(config, handler, limits=limits, observer=observer)
    return await server.start(host, port, sock=sock)
