"""The sans-IO TLS 1.3 server over TCP: :class:`ServerHandshake` in records."""

from __future__ import annotations

import dataclasses

from cryptography import x509

from ech.events import ECHStatus
from ech.server.config import ServerConfig
from ech.server.ech import ECHRejectReason
from ech.server.events import ForwardToBackend
from ech.server.handshake import NameRequiresECH, ServerHandshake, ServerState
from ech.tls.connection import Connection
from ech.tls.enums import CipherSuite, NamedGroup
from ech.tls.events import EarlyDataStatus, Event
from ech.tls.handshake import Epoch
from ech.tls.messages import ClientHello
from ech.tls.records import PaddingPolicy


class ServerConnection(Connection):
    """One TLS 1.3 server connection over a byte stream. Performs no I/O.

    The handshake itself is :attr:`handshake`; ``handshake_class`` lets a
    subclass (a test, a probe) run a handshake of its own making.
    """

    handshake: ServerHandshake
    handshake_class: type[ServerHandshake] = ServerHandshake

    def __init__(self, config: ServerConfig) -> None:
        # A client sends nothing longer than its ClientHello, so one limit
        # bounds what a client can make us buffer.
        super().__init__(
            self.handshake_class(config),
            config.record_padding,
            config.max_client_hello,
        )

    def send_session_ticket(self) -> None:
        """Issue one more ticket (RFC 8446 §4.6.1)."""
        self.handshake.send_session_ticket()
        self._apply_outputs()

    def _write_padding(self, epoch: Epoch) -> PaddingPolicy | None:
        """Pad the encrypted flight when ECH is accepted (RFC 9849 §6.1.3)."""
        if (
            epoch is Epoch.HANDSHAKE
            and self.handshake.ech_status is ECHStatus.ACCEPTED
            and self.config.ech_flight_padding
        ):
            return self.config.ech_flight_policy
        return None

    def _deliver(self, event: Event) -> Event:
        if isinstance(event, ForwardToBackend):
            # Split mode: what the client sent after its hello goes along.
            return dataclasses.replace(event, pending=self._records.take_unparsed())
        return event

    # what the handshake learned, for the application -------------------------------

    @property
    def config(self) -> ServerConfig:
        """The configuration this connection was made with."""
        return self.handshake.config

    @property
    def state(self) -> ServerState:
        """The handshake's state (RFC 8446 §A.2)."""
        return self.handshake.state

    @property
    def server_name(self) -> str | None:
        """The name the client asked for (the inner name with ECH)."""
        return self.handshake.server_name

    @property
    def outer_server_name(self) -> str | None:
        """The name in the cleartext ClientHello(Outer)."""
        return self.handshake.outer_server_name

    @property
    def ech_status(self) -> ECHStatus:
        """What became of ECH so far."""
        return self.handshake.ech_status

    @property
    def ech_reason(self) -> ECHRejectReason | None:
        """Why an offered ECH was not accepted, for logs and metrics."""
        return self.handshake.ech_reason

    @property
    def client_hello(self) -> ClientHello | None:
        """The ClientHello the handshake went on with (inner if ECH accepted)."""
        return self.handshake.client_hello

    @property
    def cipher_suite(self) -> CipherSuite | None:
        """The negotiated cipher suite, once known."""
        return self.handshake.cipher_suite

    @property
    def group(self) -> NamedGroup | None:
        """The key exchange group, once known."""
        return self.handshake.group

    @property
    def alpn_protocol(self) -> str | None:
        """The ALPN protocol chosen, if any."""
        return self.handshake.alpn_protocol

    @property
    def resumed(self) -> bool:
        """Whether a ticket's PSK was accepted."""
        return self.handshake.resumed

    @property
    def early_data_status(self) -> EarlyDataStatus:
        """What became of the client's 0-RTT data (RFC 8446 §4.2.10)."""
        return self.handshake.early_data

    @property
    def client_certificate_chain(self) -> tuple[x509.Certificate, ...]:
        """The client's authenticated chain, leaf first (RFC 8446 §4.4.2.4)."""
        return self.handshake.client_certificate_chain

    @property
    def hello_retry(self) -> bool:
        """Whether a HelloRetryRequest was sent."""
        return self.handshake.hello_retry


__all__ = ["NameRequiresECH", "ServerConnection", "ServerState"]
