"""Events that sans-IO connections return from ``receive_data``.

Frozen, slotted dataclasses, as in h11 and aioquic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ech.config import ECHConfigList

if TYPE_CHECKING:
    from ech.server.ech import ECHAccepted
from ech.tls.enums import AlertDescription, CipherSuite, NamedGroup
from ech.tls.session import SessionTicket


class ECHStatus(enum.Enum):
    """What became of Encrypted Client Hello on a connection (RFC 9849).

    ``REJECTED`` on a server also covers GREASE: by design (§10.10.4) a
    server cannot tell a GREASE extension from one for a key it lacks.
    """

    NOT_OFFERED = "not_offered"
    GREASE = "grease"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value


class Event:
    """Base class of all connection events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandshakeComplete(Event):
    """The handshake finished and application data may flow.

    ``server_name`` is the name the client asked for (SNI) and, on the
    client, the name the certificate was checked against.
    """

    cipher_suite: CipherSuite
    group: NamedGroup | None
    alpn_protocol: str | None
    server_name: str | None
    resumed: bool
    hello_retry: bool
    version: str = "TLSv1.3"
    ech_status: ECHStatus = ECHStatus.NOT_OFFERED
    outer_server_name: str | None = None


@dataclass(frozen=True, slots=True)
class ECHRejected(Event):
    """The server rejected ECH; the connection is over (RFC 9849 §6.1.6).

    The outer handshake was authenticated for ``public_name``, so
    ``retry_configs`` (None if the server sent none) can be trusted for one
    retry on a new connection. ``ech_required`` has been queued.
    """

    retry_configs: ECHConfigList | None
    public_name: str


@dataclass(frozen=True, slots=True)
class ForwardToBackend(Event):
    """Split mode: ECH was accepted for a name a backend serves (RFC 9849 §3.1).

    The client-facing server's part is now to relay: ``inner_hello`` (the
    reconstructed ClientHelloInner, a handshake message with its header)
    goes to ``backend``, followed by ``pending`` client bytes; then records
    pass both ways unchanged, except a second ClientHelloOuter after a
    backend's HRR, which ``accepted`` decrypts (§7.1.1).
    """

    backend: tuple[str, int]
    server_name: str
    outer_server_name: str | None
    inner_hello: bytes
    accepted: ECHAccepted
    pending: bytes


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
