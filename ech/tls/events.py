"""Events that sans-IO TLS connections return from ``receive_data``.

Frozen, slotted dataclasses, as in h11 and aioquic. These are the ones the
TLS layer itself produces; the handshake's outcome, which carries ECH's, is
:class:`ech.events.HandshakeComplete`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ech.tls.enums import AlertDescription
from ech.tls.session import SessionTicket


class Event:
    """Base class of all connection events."""

    __slots__ = ()


class EarlyDataStatus(enum.Enum):
    """What became of 0-RTT data (RFC 8446 §2.3, §4.2.10)."""

    NOT_OFFERED = "not_offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class EarlyDataReceived(Event):
    """0-RTT application data from the client (server only; RFC 8446 §2.3).

    It may be a replay (§8): the server's anti-replay check bounds that to
    one acceptance per ClientHello within its window, not to zero across
    servers that do not share state. Act on it only if that is safe.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """Application data from the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SessionTicketReceived(Event):
    """The server issued a ticket the client can resume with (RFC 8446 §4.6.1)."""

    ticket: SessionTicket


@dataclass(frozen=True, slots=True)
class KeyUpdateReceived(Event):
    """The peer updated its sending keys (RFC 8446 §4.6.3)."""

    update_requested: bool


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed the connection.

    ``alert`` is ``CLOSE_NOTIFY`` for an orderly close, the fatal alert the
    peer sent when it aborted, or None when the transport ended without an
    alert (a truncation attack is indistinguishable from that).
    """

    alert: AlertDescription | None
