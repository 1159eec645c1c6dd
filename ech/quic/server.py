"""HTTP/3 with ECH as a server, on asyncio: :class:`HTTP3Server`.

aioquic's server (:func:`aioquic.asyncio.serve`) receives the datagrams and
makes the connections; each becomes an :class:`~ech.quic.ECHQuicConnection`
with the current :class:`~ech.server.config.ServerConfig` (read once per
connection, so ECH keys rotate as over TCP) and answers HTTP/3 with the
same :data:`~ech.http.messages.Handler` the TCP server uses. The TCP
server's limits and observer apply (:mod:`ech.aio.limits`,
:mod:`ech.aio.report`):

* handshake timeout: a connection whose handshake has not completed in
  time is closed (CONNECTION_CLOSE, APPLICATION_ERROR-free: NO_ERROR);
* idle timeout: QUIC's own (RFC 9000 §10.1), set from the limit;
* maximum connections: one more is closed at once with CONNECTION_REFUSED
  (RFC 9000 §20.1), before any TLS, and reported ``over_capacity``;
* maximum connections per client address: the same, reported
  ``per_address`` (the address of the client's first datagram, see
  :mod:`ech.aio.limits`);
* maximum ClientHello: ``ServerConfig.max_client_hello``, enforced by the
  handshake's CRYPTO reassembly (decode_error, CRYPTO_ERROR 0x132);
* the request-head deadline of :class:`~ech.http.options.ServerOptions`:
  closed with H3_REQUEST_INCOMPLETE and reported ``request_head_timeout``.

Each connection is reported once over, as a
:class:`~ech.aio.report.ConnectionReport`, so ``ech serve``'s log lines and
metrics cover QUIC too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from aioquic.asyncio.server import QuicServer
from aioquic.asyncio.server import serve as aioquic_serve
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
from aioquic.quic.packet import QuicErrorCode

from ech.aio.limits import AddressCounts, Limits, address_key
from ech.aio.report import ConnectionReport, Observer
from ech.aio.server import CLOSE_TIMEOUT
from ech.errors import Alert, MessageTooLong
from ech.http.http3 import H3ServerProtocol
from ech.http.messages import Handler
from ech.http.options import ServerOptions
from ech.quic.connection import ECHQuicConnection
from ech.server.config import ServerConfig
from ech.server.handshake import NameRequiresECH, ServerHandshake
from ech.tls.enums import AlertDescription
from ech.tls.quic import CRYPTO_ERROR

__all__ = ["HTTP3Server", "quic_configuration"]

log = logging.getLogger("ech.quic.server")

#: aioquic's reason phrase when QUIC's idle timeout ends a connection.
_IDLE: Final = "Idle timeout"

#: The CONNECTION_CLOSE reason phrase of each refusal.
_REFUSALS: Final = {
    "over_capacity": "at capacity",
    "shutting_down": "closing",
    "per_address": "too many connections from this address",
}


def quic_configuration(config: ServerConfig, limits: Limits) -> QuicConfiguration:
    """The aioquic server settings for ``config``: HTTP/3, a certificate.

    aioquic wants a certificate and key for a server; our handshake picks
    its own from ``config``.
    """
    first = config.certificates[0]
    return QuicConfiguration(
        is_client=False,
        alpn_protocols=list(H3_ALPN),
        certificate=first.chain[0],
        private_key=first.private_key,
        idle_timeout=limits.idle_timeout,
    )


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0]).removeprefix("::ffff:")
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


class _Connection(H3ServerProtocol):
    """One QUIC connection of an :class:`HTTP3Server`: limits and its report."""

    def __init__(
        self,
        quic: QuicConnection,
        *,
        service: HTTP3Server,
        **kwargs: Any,  # noqa: ANN401 - aioquic's protocol arguments
    ) -> None:
        self.service = service
        self.connection = ECHQuicConnection.adopt(quic, service.current_config())
        super().__init__(
            self.connection, handler=service.handler, options=service.options, **kwargs
        )
        self.started = time.monotonic()
        self.handshake_seconds: float | None = None
        self.peer = "?"
        #: The per-address limit's key, once the first datagram named it.
        self.client: str | None = None
        self.refused: str | None = service.admit(self)
        if self.refused is not None:
            self.connection.refuse(_REFUSALS[self.refused])
        self._handshake_timer = self._loop.call_later(
            service.limits.handshake_timeout, self._handshake_timed_out
        )
        self._timed_out = False
        self._reported = False

    def datagram_received(self, data: bytes | str, addr: Any) -> None:  # noqa: ANN401 - aioquic's
        self.peer = _peer(addr)
        if self.client is None and self.refused is None:
            # The first datagram: its address is the client's (RFC 9000 §8.1:
            # not validated yet). Refused before the connection reads it.
            host = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
            self.client = address_key(host)
            self.refused = self.service.admit_address(self, self.client)
            if self.refused is not None:
                self.connection.refuse(_REFUSALS[self.refused])
        super().datagram_received(data, addr)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self._handshake_timer.cancel()
            self.handshake_seconds = time.monotonic() - self.started
            done = self.connection.handshake_complete_event
            if done is not None:
                self.service.observer.handshake_completed(
                    self.peer, done, self.handshake_seconds
                )
        elif isinstance(event, ConnectionTerminated):
            self._handshake_timer.cancel()
            self._report(event)
        super().quic_event_received(event)

    def _handshake_timed_out(self) -> None:
        if self.handshake_seconds is None:
            self._timed_out = True
            self._quic.close(
                error_code=QuicErrorCode.NO_ERROR,
                reason_phrase="handshake timeout",
            )
            self.transmit()

    def _report(self, event: ConnectionTerminated) -> None:
        if self._reported:
            return
        self._reported = True
        if self.refused is not None:
            self.service.observer.connection_refused(self.peer, self.refused)
        else:
            self.service.observer.connection_closed(self._connection_report(event))
        self.service.release(self)

    def _connection_report(self, event: ConnectionTerminated) -> ConnectionReport:
        tls = self.connection.tls_context
        handshake = tls.handshake
        if not isinstance(handshake, ServerHandshake):
            raise RuntimeError("internal error: a server connection with a client")
        outcome, error = self._outcome(event)
        failure = tls.failure
        alert_sent = failure.description if isinstance(failure, Alert) else None
        alert_received = None
        if (
            failure is None
            and CRYPTO_ERROR <= event.error_code < CRYPTO_ERROR + 256
            and self.handshake_seconds is None
        ):
            alert_received = AlertDescription(event.error_code - CRYPTO_ERROR)
        seen_hello = handshake.client_random is not None
        done = self.connection.handshake_complete_event
        return ConnectionReport(
            peer=self.peer,
            outcome=outcome,
            error=error,
            ech_status=handshake.ech_status if seen_hello else None,
            outer_server_name=handshake.outer_server_name,
            server_name=handshake.server_name,
            cipher_suite=handshake.cipher_suite,
            group=handshake.group,
            alpn=handshake.alpn_protocol,
            resumed=handshake.resumed,
            hello_retry=handshake.hello_retry,
            backend=None,
            handshake_seconds=self.handshake_seconds,
            duration_seconds=time.monotonic() - self.started,
            alert_sent=alert_sent,
            alert_received=alert_received,
            ech_reason=handshake.ech_reason,
            early_data=handshake.early_data if seen_hello else None,
            client_certificate_subject=(
                done.client_certificate_subject if done is not None else None
            ),
        )

    def _outcome(self, event: ConnectionTerminated) -> tuple[str, str | None]:
        """The report's outcome, named as the TCP server names its own."""
        failure = self.connection.tls_context.failure
        reason = event.reason_phrase or None
        if self.service.closing and event.reason_phrase == "shutdown":
            return "shutdown", None
        if isinstance(failure, NameRequiresECH):
            return "require_ech", str(failure)
        if isinstance(failure, MessageTooLong):
            return "client_hello_too_large", str(failure)
        if failure is not None:
            return "handshake_failed", str(failure)
        if self._timed_out:
            timeout = self.service.limits.handshake_timeout
            return "handshake_timeout", f"no handshake in {timeout:g} s"
        if self.head_timed_out:
            return "request_head_timeout", reason
        if self.handshake_seconds is None:
            if CRYPTO_ERROR <= event.error_code < CRYPTO_ERROR + 256:
                return "peer_alert", reason
            return "peer_closed", reason or "closed"
        if event.reason_phrase == _IDLE:
            return "idle_timeout", reason
        return "completed", reason


class HTTP3Server:
    """Serves HTTP/3 over QUIC with our TLS 1.3 and ECH.

    Args:
        config: the server configuration, or a provider called once per
            connection (``ech serve``'s keyring). Its ALPN is replaced by
            ``h3`` for QUIC.
        handler: answers each request (the status page, DoH).
        limits: per-connection limits (see the module docstring).
        observer: told of each connection.
        options: HTTP bounds, the request-head deadline.
    """

    def __init__(
        self,
        config: ServerConfig | Callable[[], ServerConfig],
        handler: Handler,
        *,
        limits: Limits | None = None,
        observer: Observer | None = None,
        options: ServerOptions | None = None,
    ) -> None:
        self._provider: Callable[[], ServerConfig] = (
            config if callable(config) else (lambda: config)
        )
        self.handler = handler
        self.limits = limits or Limits()
        self.observer = observer or Observer()
        self.options = options or ServerOptions()
        self.server: QuicServer | None = None
        self.closing = False
        self._connections: set[_Connection] = set()
        self._per_address = AddressCounts(self.limits.per_address)
        self._source: ServerConfig | None = None
        self._config: ServerConfig | None = None

    @property
    def open_connections(self) -> int:
        """Connections being handled now."""
        return len(self._connections)

    def current_config(self) -> ServerConfig:
        """The provider's config for QUIC: ALPN h3, our ClientHello limit."""
        source = self._provider()
        if source is not self._source or self._config is None:
            self._config = dataclasses.replace(
                source,
                alpn_protocols=tuple(H3_ALPN),
                max_client_hello=self.limits.max_client_hello,
            )
            self._source = source
        return self._config

    def admit(self, connection: _Connection) -> str | None:
        """Count a new connection in; or why not (``over_capacity``...)."""
        if self.closing:
            return "shutting_down"
        if len(self._connections) >= self.limits.max_connections:
            return "over_capacity"
        self._connections.add(connection)
        self.observer.open_connections(len(self._connections))
        return None

    def admit_address(self, connection: _Connection, client: str) -> str | None:
        """Count an admitted connection against its address; or ``per_address``.

        A connection refused here leaves the count of open connections.
        """
        if not self._per_address.take(client):
            self._connections.discard(connection)
            self.observer.open_connections(len(self._connections))
            return "per_address"
        return None

    def release(self, connection: _Connection) -> None:
        """Count a finished connection out."""
        if connection in self._connections:
            self._connections.discard(connection)
            client = connection.client
            if client is not None and connection.refused is None:
                self._per_address.give_back(client)
            self.observer.open_connections(len(self._connections))

    async def start(
        self, host: str, port: int, *, sock: socket.socket | None = None
    ) -> QuicServer:
        """Listen for QUIC on UDP ``host``:``port``, or on the bound UDP ``sock``.

        ``sock`` is how ``ech serve --workers`` gives each worker process
        its own socket of an ``SO_REUSEPORT`` group (``host`` and ``port``
        are then only what it is bound to).
        """
        settings = quic_configuration(self.current_config(), self.limits)

        def protocol(quic: QuicConnection, **kwargs: Any) -> _Connection:  # noqa: ANN401 - aioquic's
            return _Connection(quic, service=self, **kwargs)

        if sock is None:
            self.server = await aioquic_serve(
                host, port, configuration=settings, create_protocol=protocol
            )
        else:
            # What aioquic's serve() does, on a socket bound elsewhere.
            loop = asyncio.get_running_loop()
            _, self.server = await loop.create_datagram_endpoint(
                lambda: QuicServer(configuration=settings, create_protocol=protocol),
                sock=sock,
            )
        return self.server

    @property
    def port(self) -> int:
        """The UDP port listened on."""
        transport = self.server._transport if self.server is not None else None
        if transport is None:
            raise RuntimeError("not listening")
        port: int = transport.get_extra_info("sockname")[1]
        return port

    async def shutdown(
        self, timeout: float | None = None, *, now: asyncio.Event | None = None
    ) -> int:
        """Stop taking connections, wait for open ones, then close the rest.

        Closed connections are reported (``shutdown``) once QUIC's closing
        period ends, which is waited for up to ``CLOSE_TIMEOUT``.

        Returns:
            How many connections had to be closed.
        """
        self.closing = True
        if timeout is None:
            timeout = self.limits.shutdown_timeout
        remaining = await self._wait_idle(timeout, now)
        for connection in list(self._connections):
            connection.close(QuicErrorCode.NO_ERROR, reason_phrase="shutdown")
        await self._wait_idle(CLOSE_TIMEOUT, None)
        if self.server is not None:
            self.server.close()
        return remaining

    async def _wait_idle(self, timeout: float, now: asyncio.Event | None) -> int:
        """Wait until no connection is open (or ``now`` is set); how many are."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._connections and loop.time() < deadline:
            if now is not None and now.is_set():
                break
            await asyncio.sleep(0.02)
        return len(self._connections)
