"""The sans-IO TLS 1.3 client over TCP: :class:`ClientHandshake` in records."""

from __future__ import annotations

from ech.client.config import ClientConfig
from ech.client.handshake import ClientHandshake, ClientState
from ech.config import ECHConfigList
from ech.events import ECHStatus
from ech.tls.connection import Connection
from ech.tls.enums import CipherSuite, NamedGroup
from ech.tls.session import SessionTicket


class ClientConnection(Connection):
    """One TLS 1.3 client connection over a byte stream. Performs no I/O.

    Call :meth:`start`, then pump bytes between :meth:`data_to_send` and
    :meth:`receive_data` until a :class:`~ech.events.HandshakeComplete`.
    The arguments are :class:`~ech.client.handshake.ClientHandshake`'s; the
    handshake itself is :attr:`handshake`, and ``handshake_class`` lets a
    subclass (a test, a probe) run a handshake of its own making.
    """

    handshake: ClientHandshake
    handshake_class: type[ClientHandshake] = ClientHandshake

    def __init__(
        self,
        config: ClientConfig,
        server_name: str | None,
        *,
        session: SessionTicket | None = None,
        ech_configs: ECHConfigList | None = None,
    ) -> None:
        super().__init__(
            self.handshake_class(
                config, server_name, session=session, ech_configs=ech_configs
            ),
            config.record_padding,
        )

    def start(self) -> None:
        """Queue the first ClientHello."""
        self.handshake.start()
        self._apply_outputs()

    # what the handshake learned, for the application -------------------------------

    @property
    def config(self) -> ClientConfig:
        """The configuration this connection was made with."""
        return self.handshake.config

    @property
    def server_name(self) -> str | None:
        """The name asked for and verified (the inner name with ECH)."""
        return self.handshake.server_name

    @property
    def state(self) -> ClientState:
        """The handshake's state (RFC 8446 §A.1)."""
        return self.handshake.state

    @property
    def ech_status(self) -> ECHStatus:
        """What became of ECH so far."""
        return self.handshake.ech_status

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
        """The ALPN protocol the server chose, if any."""
        return self.handshake.alpn_protocol

    @property
    def session_tickets(self) -> list[SessionTicket]:
        """Tickets received so far, to resume with."""
        return self.handshake.session_tickets

    @property
    def retry_configs(self) -> ECHConfigList | None:
        """The server's authenticated retry_configs after an ECH rejection."""
        return self.handshake.retry_configs


__all__ = ["ClientConnection", "ClientState"]
