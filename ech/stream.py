"""What the socket and asyncio adapters share: turning events into a stream.

Both adapters pump bytes between a transport and a sans-IO connection; this
base keeps what the events mean to a byte-stream user: received data, the
handshake result, session tickets, and how the connection ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import NameOID

from ech.config import ECHConfigList
from ech.errors import ECHRejectedError, PeerAlert
from ech.events import (
    ConnectionClosed,
    DataReceived,
    EarlyDataReceived,
    ECHRejected,
    ECHStatus,
    Event,
    HandshakeComplete,
    SessionTicketReceived,
)
from ech.server.events import ForwardToBackend
from ech.tls.connection import Connection
from ech.tls.enums import AlertDescription
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dial import ECHOutcome


class EventStream:
    """Application-facing state of one adapted connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.handshake: HandshakeComplete | None = None
        #: Whether this connection is the one retry after an ECH rejection,
        #: and the retry_configs it used.
        self.retried = False
        self.retry_configs: ECHConfigList | None = None
        #: A client's ECH outcome and the reason for it (set by ech.dial).
        self.ech_outcome: ECHOutcome | None = None
        self.session_tickets: list[SessionTicket] = []
        #: Split mode: set when the server hands the connection to a backend.
        self.forward: ForwardToBackend | None = None
        #: The connection's events, but for the application data that
        #: ``recv`` hands over (kept here too, every byte received would
        #: stay in memory as long as the connection).
        self.events: list[Event] = []
        self._incoming = bytearray()
        self._early = b""  # rare and small (max_early_data_size): no buffer kept
        self._eof = False

    @property
    def early_data(self) -> bytes:
        """A server's 0-RTT data from the client, in full (RFC 8446 §2.3).

        Kept apart from :meth:`recv`'s data on purpose: early data may be a
        replay (§8), so an application takes it only when it knows what to
        do with it (:func:`ech.http.serve_http` answers it after the
        handshake, see there). Empty on a client, and when none was
        accepted.
        """
        return self._early

    @property
    def negotiated(self) -> HandshakeComplete:
        """The finished handshake's parameters.

        Raises:
            RuntimeError: the handshake has not completed.
        """
        if self.handshake is None:
            raise RuntimeError("the handshake has not completed")
        return self.handshake

    # what ssl.SSLSocket / ssl.SSLObject report, so code written for ssl ports --

    def version(self) -> str | None:
        """The protocol version, as ``ssl.SSLSocket.version()`` names it."""
        return self.handshake.version if self.handshake is not None else None

    def cipher(self) -> tuple[str, str, int] | None:
        """``(suite name, protocol version, secret bits)``, as in :mod:`ssl`."""
        handshake = self.handshake
        if handshake is None:
            return None
        name = str(handshake.cipher_suite)
        return name, handshake.version, 128 if "AES_128" in name else 256

    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol the server chose (RFC 7301), or None.

        httpcore reads it through ``get_extra_info("ssl_object")`` to pick
        HTTP/2; :mod:`ech.httpx` hands it this object.
        """
        return self.handshake.alpn_protocol if self.handshake is not None else None

    @property
    def peer_certificates(self) -> tuple[bytes, ...]:
        """The server's checked chain, DER, leaf first (empty on a server)."""
        chain: tuple[bytes, ...] = getattr(
            self.connection.handshake, "peer_certificates", ()
        )
        return chain

    def getpeercert(
        self, binary_form: bool = False
    ) -> dict[str, object] | bytes | None:
        """The server's certificate, as ``ssl.SSLSocket.getpeercert`` gives it.

        ``binary_form=True`` gives the leaf's DER; otherwise a dict with
        ``subject``, ``issuer``, ``serialNumber``, ``notBefore``,
        ``notAfter`` and ``subjectAltName`` in :mod:`ssl`'s shapes. It was
        checked against the inner name, or against public_name when ECH
        was rejected (RFC 9849 §6.1.7).
        """
        chain = self.peer_certificates
        if not chain:
            return None
        if binary_form:
            return chain[0]
        return certificate_dict(chain[0])

    @property
    def ech_status(self) -> ECHStatus | None:
        """ECH's outcome on this connection (None before the handshake)."""
        return self.handshake.ech_status if self.handshake is not None else None

    @property
    def outer_server_name(self) -> str | None:
        """The name the network saw in ClientHelloOuter (public_name with ECH)."""
        return self.handshake.outer_server_name if self.handshake is not None else None

    def _absorb(self, events: list[Event]) -> None:
        """Record events; raise for the ones that end the connection badly.

        Raises:
            ECHRejectedError: the server rejected ECH.
            PeerAlert: the peer aborted with a fatal alert.
        """
        for event in events:
            if isinstance(event, DataReceived):
                self._incoming += event.data
                continue
            self.events.append(event)
            if isinstance(event, EarlyDataReceived):
                self._early += event.data
            elif isinstance(event, HandshakeComplete):
                self.handshake = event
            elif isinstance(event, SessionTicketReceived):
                self.session_tickets.append(event.ticket)
            elif isinstance(event, ForwardToBackend):
                self.forward = event
            elif isinstance(event, ECHRejected):
                self._eof = True
                raise ECHRejectedError(event.retry_configs, event.public_name)
            elif isinstance(event, ConnectionClosed):
                self._eof = True
                if event.alert not in (None, AlertDescription.CLOSE_NOTIFY):
                    raise PeerAlert(event.alert)

    def _take(self, max_bytes: int) -> bytes:
        out = bytes(self._incoming[:max_bytes])
        del self._incoming[:max_bytes]
        return out


def _rdns(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple((_SSL_NAMES.get(a.oid, a.oid.dotted_string), str(a.value)) for a in rdn)
        for rdn in name.rdns
    )


_SSL_NAMES = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.ORGANIZATION_NAME: "organizationName",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    NameOID.COUNTRY_NAME: "countryName",
    NameOID.LOCALITY_NAME: "localityName",
    NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
}


def certificate_dict(der: bytes) -> dict[str, object]:
    """A certificate in the shape ``ssl.SSLSocket.getpeercert()`` returns."""
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        alt: tuple[tuple[str, str], ...] = ()
    else:
        alt = tuple(("DNS", n) for n in sans.value.get_values_for_type(x509.DNSName))
        alt += tuple(
            ("IP Address", str(a))
            for a in sans.value.get_values_for_type(x509.IPAddress)
        )
    when = "%b %d %H:%M:%S %Y GMT"
    return {
        "subject": _rdns(cert.subject),
        "issuer": _rdns(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": f"{cert.serial_number:X}",
        "notBefore": cert.not_valid_before_utc.strftime(when),
        "notAfter": cert.not_valid_after_utc.strftime(when),
        "subjectAltName": alt,
    }
