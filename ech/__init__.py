"""``ech``: TLS 1.3 with Encrypted Client Hello (RFC 9849), client and server.

The connections are sans-IO: feed bytes with ``receive_data``, take bytes
with ``data_to_send``. :mod:`ech.blocking` and :mod:`ech.aio` adapt them to
sockets and asyncio.
"""

from __future__ import annotations

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.errors import Alert, ConnectionClosedError, PeerAlert, TLSError
from ech.events import (
    ConnectionClosed,
    DataReceived,
    EarlyDataReceived,
    EarlyDataStatus,
    Event,
    HandshakeComplete,
    KeyUpdateReceived,
    SessionTicketReceived,
)
from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import AlertDescription, CipherSuite, NamedGroup, SignatureScheme
from ech.tls.session import SessionTicket

__all__ = [
    "Alert",
    "AlertDescription",
    "CertifiedKey",
    "CipherSuite",
    "ClientConfig",
    "ClientConnection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "DataReceived",
    "EarlyDataReceived",
    "EarlyDataStatus",
    "Event",
    "HandshakeComplete",
    "KeyUpdateReceived",
    "NamedGroup",
    "PeerAlert",
    "ServerConfig",
    "ServerConnection",
    "SessionTicket",
    "SessionTicketReceived",
    "SignatureScheme",
    "TLSError",
]
