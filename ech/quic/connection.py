"""aioquic's QUIC connection with our TLS 1.3 engine (and so ECH) inside.

The seam is as narrow as aioquic allows: :class:`ECHQuicConnection`
overrides one method of :class:`aioquic.quic.connection.QuicConnection`,
``_initialize`` (run once, before the first CRYPTO byte), which lets aioquic
build everything as usual and then puts a :class:`~ech.quic.tls.TLSContext`
where aioquic's own ``tls.Context`` was, with the callbacks and transport
parameters aioquic set on it.

aioquic remains the QUIC implementation: packet protection, frames, loss
recovery, flow control and HTTP/3 are all its own. Tested with aioquic 1.7
(the ``aioquic>=1.2`` of pyproject.toml; ``_initialize`` has kept its
signature since 1.0).
"""

from __future__ import annotations

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from ech.client.config import ClientConfig
from ech.client.handshake import ClientHandshake
from ech.config import ECHConfigList
from ech.events import ECHRejected, HandshakeComplete
from ech.quic.tls import TLSContext
from ech.server.config import ServerConfig
from ech.server.handshake import ServerHandshake
from ech.tls.quic import MAX_MESSAGE, QuicOptions
from ech.tls.session import SessionTicket


class ECHQuicConnection(QuicConnection):
    """A QUIC connection whose handshake is ours: ECH over QUIC.

    Args:
        configuration: aioquic's settings (transport, ALPN, logging); its
            TLS fields (CA, certificate, server_name) are ignored in favour
            of ``tls``.
        tls: our client or server configuration.
        server_name: the client's inner (true) name; ``ech_configs``,
            ``session``: as for :class:`~ech.client.connection.ClientConnection`.
        original_destination_connection_id: a server's, from the client's
            first Initial (RFC 9000 §7.3).

    Under aioquic's ``serve`` (:class:`ech.quic.server.HTTP3Server`), its
    server makes each server connection and :meth:`adopt` turns it into one
    of ours; the constructor makes clients, and servers driven by hand
    (tests, benchmarks).

    ``client_handshake_class`` and ``server_handshake_class`` let a subclass
    (a test, a probe) run a handshake of its own making, as
    ``handshake_class`` does over TCP.
    """

    tls_context: TLSContext
    client_handshake_class: type[ClientHandshake] = ClientHandshake
    server_handshake_class: type[ServerHandshake] = ServerHandshake

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        tls: ClientConfig | ServerConfig,
        server_name: str | None = None,
        ech_configs: ECHConfigList | None = None,
        session: SessionTicket | None = None,
        original_destination_connection_id: bytes | None = None,
    ) -> None:
        if configuration.is_client != isinstance(tls, ClientConfig):
            raise ValueError("a client configuration needs a ClientConfig, and back")
        _check_alpn(configuration, tls)
        if isinstance(tls, ServerConfig):
            # aioquic insists on these for a server; our handshake uses ``tls``.
            first = tls.certificates[0]
            configuration.certificate = first.chain[0]
            configuration.private_key = first.private_key
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        self._ech_tls = tls
        self._ech_server_name = server_name
        self._ech_configs = ech_configs
        self._ech_session = session
        self._ech_refusal: str | None = None

    @classmethod
    def adopt(cls, connection: QuicConnection, tls: ServerConfig) -> ECHQuicConnection:
        """Make a server connection aioquic built into one of ours.

        aioquic's :func:`~aioquic.asyncio.serve` makes its connections itself
        and passes each to ``create_protocol`` before it has seen a
        datagram; that is the one moment this is safe (nothing of TLS
        exists yet).
        """
        if connection.configuration.is_client:
            raise ValueError("only server connections are adopted")
        connection.__class__ = cls
        adopted: ECHQuicConnection = connection  # type: ignore[assignment]
        adopted._ech_tls = tls
        adopted._ech_server_name = None
        adopted._ech_configs = None
        adopted._ech_session = None
        adopted._ech_refusal = None
        return adopted

    def refuse(self, reason: str) -> None:
        """Close this (server) connection with CONNECTION_REFUSED, not serve it.

        Called before its first datagram: the ClientHello is then answered
        with nothing but the close (RFC 9000 §20.1), no TLS at all.
        """
        self._ech_refusal = reason

    # our results ----------------------------------------------------------------

    @property
    def handshake(self) -> ClientHandshake | ServerHandshake:
        """Our handshake (names, ECH status, tickets), once the connection began."""
        return self.tls_context.handshake

    @property
    def handshake_complete_event(self) -> HandshakeComplete | None:
        """The handshake's outcome, with ECH's, once it completed."""
        for event in self.tls_context.events:
            if isinstance(event, HandshakeComplete):
                return event
        return None

    @property
    def ech_rejected(self) -> ECHRejected | None:
        """The server's rejection of ECH, authenticated, if that is how it ended."""
        for event in self.tls_context.events:
            if isinstance(event, ECHRejected):
                return event
        return None

    # the two seams ------------------------------------------------------------------

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        theirs = self.tls
        config = self._ech_tls

        def make_handshake(quic: QuicOptions) -> ClientHandshake | ServerHandshake:
            if isinstance(config, ClientConfig):
                return self.client_handshake_class(
                    config,
                    self._ech_server_name,
                    session=self._ech_session,
                    ech_configs=self._ech_configs,
                    quic=quic,
                )
            return self.server_handshake_class(config, quic=quic)

        # A client sends nothing longer than its ClientHello (as over TCP).
        max_message = (
            config.max_client_hello if isinstance(config, ServerConfig) else MAX_MESSAGE
        )
        ours = TLSContext(
            make_handshake,
            is_client=self._is_client,
            max_message=max_message,
            refusal=self._ech_refusal,
        )
        ours.handshake_extensions = theirs.handshake_extensions
        ours.alpn_cb = theirs.alpn_cb
        ours.update_traffic_key_cb = theirs.update_traffic_key_cb
        self.tls_context = ours
        self.tls = ours  # type: ignore[assignment]


def _check_alpn(
    configuration: QuicConfiguration, tls: ClientConfig | ServerConfig
) -> None:
    """Both must name the same ALPN protocols: aioquic's H3 reads its own."""
    if configuration.alpn_protocols is None:
        configuration.alpn_protocols = list(tls.alpn_protocols)
    elif list(configuration.alpn_protocols) != list(tls.alpn_protocols):
        raise ValueError("QuicConfiguration and the TLS config disagree on ALPN")
    if not tls.alpn_protocols:
        raise ValueError("QUIC needs ALPN protocols (RFC 9001 §8.1)")


__all__ = ["ECHQuicConnection"]
