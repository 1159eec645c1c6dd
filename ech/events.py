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


class ECHReason(enum.Enum):
    """Why a client's connection has the ECH outcome it has, in one word.

    :mod:`ech.dial` decides it (with a sentence for people beside it): why
    ECH was not used (no HTTPS record, a record without ``ech``, no config
    we support, DoH failed, nothing asked), or what became of an offer.
    """

    #: The server decrypted ClientHelloInner (RFC 9849 §6.1.4).
    ACCEPTED = "accepted"
    #: The first offer was rejected; the retry with the server's
    #: authenticated retry_configs was accepted (§6.1.6).
    ACCEPTED_AFTER_RETRY = "accepted_after_retry"
    #: The server rejected ECH and no (further) retry was possible.
    REJECTED = "rejected"
    #: No configs given, no resolver asked, no GREASE: ECH was not wanted.
    NOT_REQUESTED = "not_requested"
    #: GREASE was asked for (``ClientConfig.ech_grease``) without configs.
    GREASE_REQUESTED = "grease_requested"
    #: The origin has no usable HTTPS record (RFC 9460 §3).
    NO_HTTPS_RECORD = "no_https_record"
    #: The HTTPS record has no ``ech`` parameter (RFC 9848 §3).
    RECORD_WITHOUT_ECH = "record_without_ech"
    #: ECH configs were offered but none is usable: unknown KEM, suites or
    #: version, or a mandatory extension we lack (RFC 9849 §6.1, ECH-5 to ECH-9).
    NO_SUPPORTED_CONFIG = "no_supported_config"
    #: The DoH lookup failed; nothing was sent to the server (RFC 9848 §5.3).
    DOH_FAILED = "doh_failed"

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
    "ECHReason",
    "ECHRejected",
    "ECHStatus",
    "EarlyDataReceived",
    "EarlyDataStatus",
    "Event",
    "HandshakeComplete",
    "KeyUpdateReceived",
    "SessionTicketReceived",
]
