"""Events that sans-IO connections return from ``receive_data``.

Frozen, slotted dataclasses, as in h11 and aioquic. The TLS layer's own
events (:mod:`ech.tls.events`) are re-exported here beside the two that
carry ECH's outcome: :class:`HandshakeComplete` and :class:`ECHRejected`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography import x509

from ech.config import ECHConfigList
from ech.tls.enums import CipherSuite, NamedGroup
from ech.tls.events import (
    ConnectionClosed,
    DataReceived,
    EarlyDataReceived,
    EarlyDataStatus,
    Event,
    KeyUpdateReceived,
    SessionTicketReceived,
)


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
    #: On the server: the client's certificate chain, leaf first, validated
    #: against ``ServerConfig.client_ca`` and proven by its CertificateVerify
    #: (RFC 8446 §4.4.2.4); on a resumed connection the leaf the ticket's
    #: handshake authenticated. Empty without client authentication, and
    #: always on the client.
    client_certificate_chain: tuple[x509.Certificate, ...] = ()
    #: What became of 0-RTT data (RFC 8446 §4.2.10), on both ends.
    early_data: EarlyDataStatus = EarlyDataStatus.NOT_OFFERED

    @property
    def client_certificate_subject(self) -> str | None:
        """The client leaf's subject as an RFC 4514 string, or None."""
        if not self.client_certificate_chain:
            return None
        return self.client_certificate_chain[0].subject.rfc4514_string()


@dataclass(frozen=True, slots=True)
class ECHRejected(Event):
    """The server rejected ECH; the connection is over (RFC 9849 §6.1.6).

    The outer handshake was authenticated for ``public_name``, so
    ``retry_configs`` (None if the server sent none) can be trusted for one
    retry on a new connection. ``ech_required`` has been queued.
    """

    retry_configs: ECHConfigList | None
    public_name: str


__all__ = [
    "ConnectionClosed",
    "DataReceived",
    "ECHRejected",
    "ECHStatus",
    "EarlyDataReceived",
    "EarlyDataStatus",
    "Event",
    "HandshakeComplete",
    "KeyUpdateReceived",
    "SessionTicketReceived",
]
