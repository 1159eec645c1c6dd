"""What the asyncio server tells an observer about each connection.

The server decides and enforces; it does not log or count. It reports to
an :class:`Observer`, and ``ech serve`` (:mod:`ech.serve.connection_log`)
turns the reports into its log lines and Prometheus metrics. Library users
get the same facts with an observer of their own, or ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ech.events import EarlyDataStatus, ECHStatus, HandshakeComplete
from ech.server.ech import ECHRejectReason
from ech.tls.enums import AlertDescription, CipherSuite, NamedGroup

__all__ = ["ConnectionReport", "Observer"]


@dataclass(frozen=True)
class ConnectionReport:
    """One connection, once it is over.

    Attributes:
        peer: The client's address, ``host:port`` (``[v6]:port``).
        outcome: How it ended: ``completed``, ``handshake_timeout``,
            ``handshake_failed``, ``client_hello_too_large``,
            ``require_ech``, ``peer_alert``, ``peer_closed``,
            ``idle_timeout``, ``request_head_timeout`` (no complete HTTP
            request head in time, :class:`ech.http.ServerOptions`),
            ``forwarded``, ``backend_unreachable``, ``failed``,
            ``internal_error`` or ``shutdown``.
        error: What went wrong, if anything.
        ech_status: ECH's outcome, or None when no ClientHello was read.
        outer_server_name, server_name: The outer SNI and the name served.
        cipher_suite, group, alpn: What was negotiated, if anything.
        resumed, hello_retry: PSK resumption; a HelloRetryRequest was sent.
        backend: Split mode: the backend ``host:port`` it was relayed to.
        handshake_seconds: From accept to a completed handshake, if it was.
        duration_seconds: From accept to close.
        alert_sent: The fatal alert we sent, if any.
        alert_received: The fatal alert the peer sent, if any.
        ech_reason: Why an offered ECH was not accepted (``ech_status``
            rejected, or a handshake aborted on a malformed inner hello),
            as far as the server can tell; None otherwise.
        early_data: What became of the client's 0-RTT data (RFC 8446
            §4.2.10), or None when no ClientHello was read. ``rejected``
            also on a connection that never completed: a replayed
            ClientHello is refused its early data (§8) and cannot finish.
        client_certificate_subject: The subject (RFC 4514) of the
            certificate the client authenticated with (RFC 8446 §4.4.2),
            or None.
    """

    peer: str
    outcome: str
    error: str | None
    ech_status: ECHStatus | None
    outer_server_name: str | None
    server_name: str | None
    cipher_suite: CipherSuite | None
    group: NamedGroup | None
    alpn: str | None
    resumed: bool
    hello_retry: bool
    backend: str | None
    handshake_seconds: float | None
    duration_seconds: float
    alert_sent: AlertDescription | None
    alert_received: AlertDescription | None
    ech_reason: ECHRejectReason | None = None
    early_data: EarlyDataStatus | None = None
    client_certificate_subject: str | None = None


class Observer:
    """Receives what happens on the server's connections; does nothing here.

    Subclass and override what you need. Calls come from the event loop's
    thread and must not block.
    """

    def connection_refused(self, peer: str, reason: str) -> None:
        """A connection was closed on accept, for ``reason``.

        ``over_capacity`` (``Limits.max_connections``), ``per_address``
        (``Limits.per_address``: its address holds its share) or
        ``shutting_down``.
        """

    def open_connections(self, count: int) -> None:
        """The number of connections being handled changed to ``count``."""

    def handshake_completed(
        self, peer: str, handshake: HandshakeComplete, seconds: float
    ) -> None:
        """A handshake completed ``seconds`` after accept."""

    def connection_closed(self, report: ConnectionReport) -> None:
        """A connection is over (reported before it leaves the open count)."""
