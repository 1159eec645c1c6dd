"""Blocking-socket adapter: a pump loop around a sans-IO connection.

Works for both roles. :func:`connect` opens a client connection;
:func:`wrap_server` runs the server side on an accepted socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ech import dial
from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.config import ECHConfigList
from ech.errors import Alert, ConnectionClosedError, PeerAlert
from ech.events import (
    HandshakeComplete,
)
from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection
from ech.stream import EventStream
from ech.tls.connection import Connection
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver

_RECV_SIZE = 65536

#: Opens a TCP connection to ``(host, port)`` with a timeout.
SocketFactory = Callable[[tuple[str, int], float | None], socket.socket]


class TLSSocket(EventStream):
    """A TLS connection over a connected blocking socket."""

    def __init__(self, sock: socket.socket, connection: Connection) -> None:
        super().__init__(connection)
        self.socket = sock
        # One reader thread and one writer thread may share the connection
        # (httpcore's HTTP/2 does): the sans-IO state and the order of
        # records on the wire are kept under one lock, never held in recv.
        self._lock = threading.RLock()

    def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            self.socket.sendall(data)

    def _pump(self) -> None:
        data = self.socket.recv(_RECV_SIZE)
        with self._lock:
            try:
                events = self.connection.receive_data(data)
            except BaseException:
                # Alerts are queued before receive_data raises: send them, but a
                # peer that already hung up must not hide the TLS error.
                with contextlib.suppress(OSError):
                    self._flush()
                raise
            self._flush()
            self._absorb(events)

    def do_handshake(self) -> HandshakeComplete:
        """Run the handshake to completion.

        Raises:
            Alert: the peer broke the protocol (the alert was sent).
            PeerAlert: the peer aborted.
            ConnectionClosedError: the transport closed first.
        """
        self._flush()
        while self.handshake is None:
            if self.forward is not None:
                raise RuntimeError("split mode (backends) needs the asyncio server")
            if self._eof:
                raise ConnectionClosedError("connection closed during the handshake")
            self._pump()
        return self.handshake

    def recv(self, max_bytes: int = _RECV_SIZE) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` once the peer closed."""
        while not self._incoming and not self._eof:
            self._pump()
        return self._take(max_bytes)

    def recv_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes of application data.

        Raises:
            ConnectionClosedError: the peer closed before ``n`` bytes came.
        """
        while len(self._incoming) < n:
            if self._eof:
                raise ConnectionClosedError("peer closed before enough data arrived")
            self._pump()
        return self._take(n)

    def sendall(self, data: bytes) -> None:
        """Send application data."""
        with self._lock:
            self.connection.send(data)
            self._flush()

    def update_keys(self, *, request_peer: bool = True) -> None:
        """Send a KeyUpdate (RFC 8446 §4.6.3)."""
        self.connection.update_keys(request_peer=request_peer)
        self._flush()

    def close(self) -> None:
        """Send close_notify and close the socket."""
        try:
            self.connection.close()
            self._flush()
        except OSError:
            pass
        finally:
            self.socket.close()

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(
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
    timeout: float | None = 30.0,
    socket_factory: SocketFactory = socket.create_connection,
    early_data: bytes | None = None,
) -> TLSSocket:
    """Open a TCP connection and complete a TLS 1.3 handshake as a client.

    ``server_name`` defaults to ``host``. With ``ech_configs`` the name is
    sent encrypted (RFC 9849). If the server rejects ECH and returns
    retry_configs we can use, and ``ech_retry`` is set, one new connection
    is made with them (§6.1.6); a second rejection is raised. There is never
    a fallback to a cleartext ClientHello (§8.1.1).

    With a DoH ``resolver`` and no ``ech_configs``, the server name's HTTPS
    record is looked up first (RFC 9848 §5; nothing is sent before it
    answers): its ECH configs are used, or GREASE when it has none. Without
    a resolver there is no DNS traffic at all. The policy is
    :mod:`ech.dial`'s, shared with :func:`ech.aio.open_connection`. It
    refuses to send a ClientHello when every HTTPS record carries ``ech``
    but none is usable (RFC 9848 §5.1); with ``require_ech`` (strict mode)
    it connects only with real ECH configs, so the outcome is ECH accepted
    or an error. ``tls.ech_outcome`` says what became of ECH and why.

    ``socket_factory`` opens the TCP connection, as
    ``socket.create_connection((host, port), timeout)`` does by default.

    ``early_data`` is sent as 0-RTT data (RFC 8446 §2.3) when ``session``
    allows it; ``tls.negotiated.early_data`` then says whether the server
    read it. If not (``rejected`` or ``not_offered``), nothing was delivered
    and the caller sends it again with :meth:`TLSSocket.sendall`. A retry
    after an ECH rejection never sends early data.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
        ECHUnavailableError: ECH was promised or required and cannot be
            offered; nothing was sent.
        DNSLookupError: the resolver failed.
    """
    name = server_name or host
    plan = dial.plan(
        config,
        name,
        port,
        ech_configs=ech_configs,
        resolver=resolver,
        ech_retry=ech_retry,
        require_ech=require_ech,
    )

    attempts: list[ECHConfigList | None] = []

    def once(config: ClientConfig, configs: ECHConfigList | None) -> TLSSocket:
        # Early data goes with the first attempt only, never with the retry
        # after an ECH rejection: the caller resends what was not accepted.
        early = early_data if not attempts else None
        attempts.append(configs)
        sock = socket_factory((host, port), timeout)
        return _handshake(sock, config, name, session, configs, early)

    return dial.connect_with_retry(plan, once)


T = TypeVar("T", bound=TLSSocket)


def _handshake(
    sock: socket.socket,
    config: ClientConfig,
    server_name: str,
    session: SessionTicket | None,
    ech_configs: ECHConfigList | None,
    early_data: bytes | None = None,
    stream_class: type[T] = TLSSocket,  # type: ignore[assignment]  # T's default
) -> T:
    connection = ClientConnection(
        config,
        server_name,
        session=session,
        ech_configs=ech_configs,
        early_data=early_data,
    )
    tls = stream_class(sock, connection)
    try:
        connection.start()
        tls.do_handshake()
    except BaseException:
        with contextlib.suppress(OSError):
            sock.sendall(connection.data_to_send())
        sock.close()
        raise
    return tls


def wrap_server(sock: socket.socket, config: ServerConfig) -> TLSSocket:
    """Complete a TLS 1.3 handshake as the server on an accepted socket."""
    tls = TLSSocket(sock, ServerConnection(config))
    try:
        tls.do_handshake()
    except (Alert, PeerAlert, ConnectionClosedError, OSError):
        sock.close()
        raise
    return tls
