"""The sans-IO TLS 1.3 client over TCP: :class:`ClientHandshake` in records."""

from __future__ import annotations

from ech.client.config import ClientConfig
from ech.client.handshake import ClientHandshake, ClientState
from ech.config import ECHConfigList
from ech.events import ECHStatus
from ech.tls.connection import Connection
from ech.tls.enums import CipherSuite, NamedGroup
from ech.tls.events import EarlyDataStatus
from ech.tls.session import SessionTicket


class ClientConnection(Connection):
    """One TLS 1.3 client connection over a byte stream. Performs no I/O.

    Call :meth:`start`, then pump bytes between ``data_to_send()`` and
    :meth:`receive_data` until a :class:`~ech.events.HandshakeComplete`.
    The arguments are :class:`~ech.client.handshake.ClientHandshake`'s; the
    handshake itself is :attr:`handshake`, and ``handshake_class`` lets a
    subclass (a test, a probe) run a handshake of its own making.

    0-RTT (RFC 8446 §2.3): with ``early_data`` and a ``session`` whose
    ticket allows it, :meth:`start` sends the data right after ClientHello,
    under the early traffic key; :meth:`send_early_data` adds more until the
    server's reply. :attr:`early_data_status` (and
    ``HandshakeComplete.early_data``) says whether the server read it; when
    ``rejected`` (or ``not_offered``: no ticket, or one without early
    data), the data was not delivered and the application sends it again
    with :meth:`send` once the handshake is complete. Early data can be
    replayed by an attacker (RFC 8446 §8): send only what is safe to repeat.
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
        early_data: bytes | None = None,
    ) -> None:
        if (
            early_data
            and session is not None
            and len(early_data) > session.max_early_data_size > 0
        ):
            raise ValueError(
                f"{len(early_data)} bytes of early data; the ticket allows "
                f"{session.max_early_data_size}"
            )
        super().__init__(
            self.handshake_class(
                config,
                server_name,
                session=session,
                ech_configs=ech_configs,
                early_data=early_data is not None,
            ),
            config.record_padding,
        )
        self._early_data = early_data or b""
        self._early_data_sent = 0

    def start(self) -> None:
        """Queue the first ClientHello, and the early data if it is offered."""
        self.handshake.start()
        self._apply_outputs()
        if self.handshake.early_data_offered and self._early_data:
            self.send_early_data(self._early_data)

    def send_early_data(self, data: bytes) -> None:
        """Queue more 0-RTT data (RFC 8446 §2.3) before the server's reply.

        Raises:
            RuntimeError: 0-RTT was not offered, or the server already
                answered (the data would go nowhere).
            ValueError: more than the ticket's max_early_data_size in all.
        """
        handshake = self.handshake
        if not handshake.early_data_offered:
            raise RuntimeError("0-RTT was not offered on this connection")
        if handshake.state is not ClientState.WAIT_SH:
            raise RuntimeError("0-RTT data is sent before the server's reply")
        session = handshake.session
        limit = session.max_early_data_size if session is not None else 0
        if self._early_data_sent + len(data) > limit:
            raise ValueError(f"the ticket allows {limit} bytes of early data")
        self._write_early_data(data)
        self._early_data_sent += len(data)

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
    def early_data_status(self) -> EarlyDataStatus:
        """What the server did with our 0-RTT data, once known."""
        return self.handshake.early_data_status

    @property
    def retry_configs(self) -> ECHConfigList | None:
        """The server's authenticated retry_configs after an ECH rejection."""
        return self.handshake.retry_configs


__all__ = ["ClientConnection", "ClientState"]
