"""Our TLS 1.3 engine where aioquic expects its own ``tls.Context``.

aioquic's :class:`~aioquic.quic.connection.QuicConnection` talks to its TLS
engine through a handful of names: ``handle_message(data, buffers)``, the
callbacks ``alpn_cb`` and ``update_traffic_key_cb``, the list
``handshake_extensions`` (its transport parameters), and the results
``state``, ``alpn_negotiated``, ``received_extensions``, ``session_resumed``,
``early_data_accepted``, ``legacy_session_id`` and ``client_random``.
:class:`TLSContext` provides exactly those around a
:class:`~ech.tls.quic.QuicTLS`, so aioquic keeps doing all of QUIC (packet
protection, frames, loss recovery, HTTP/3) and our handshake does TLS, ECH
included. Tested with aioquic 1.7.
"""

from __future__ import annotations

from collections.abc import Callable

from aioquic import tls as aioquic_tls
from aioquic._buffer import Buffer
from aioquic.quic.connection import QuicConnectionError
from aioquic.quic.packet import QuicErrorCode, QuicFrameType

from ech.client.handshake import ClientHandshake
from ech.events import ECHRejected, HandshakeComplete
from ech.server.handshake import ServerHandshake
from ech.tls.enums import AlertDescription, ExtensionType
from ech.tls.errors import Alert
from ech.tls.events import Event
from ech.tls.handshake import Abort, Direction, Epoch, InstallSecret, SendMessage
from ech.tls.quic import MAX_MESSAGE, QuicOptions, QuicProtocolViolation, QuicTLS

_EPOCHS = {
    Epoch.INITIAL: aioquic_tls.Epoch.INITIAL,
    Epoch.EARLY_DATA: aioquic_tls.Epoch.ZERO_RTT,
    Epoch.HANDSHAKE: aioquic_tls.Epoch.HANDSHAKE,
    Epoch.APPLICATION: aioquic_tls.Epoch.ONE_RTT,
}
_DIRECTIONS = {
    Direction.READ: aioquic_tls.Direction.DECRYPT,
    Direction.WRITE: aioquic_tls.Direction.ENCRYPT,
}

#: Builds the handshake once the context knows its transport options.
HandshakeFactory = Callable[[QuicOptions], ClientHandshake | ServerHandshake]


class TLSAlert(aioquic_tls.Alert):
    """One of our alerts, in the type aioquic turns into CRYPTO_ERROR (§4.8)."""

    def __init__(self, description: int, message: str) -> None:
        super().__init__(message)
        # aioquic's enum lacks ech_required (121); aioquic only takes int() of it.
        self.description = AlertDescription(description)  # type: ignore[assignment]


class TLSContext:
    """A stand-in for ``aioquic.tls.Context`` running our handshake.

    Args:
        make_handshake: builds the client or server handshake with the
            given :class:`QuicOptions` (transport parameters come from
            aioquic through :attr:`handshake_extensions`).
        is_client: which end.
        max_message: longest handshake message accepted.
        refusal: a server refusing the connection (at capacity): the
            reason; the first CRYPTO data closes it with CONNECTION_REFUSED.

    Attributes:
        events: what our handshake reported (HandshakeComplete, ECHRejected,
            SessionTicketReceived), for the layers above aioquic.
        failure: the error our handshake raised, which closed the
            connection (an :class:`~ech.errors.Alert` or
            :class:`~ech.tls.quic.QuicProtocolViolation`), if any.

    aioquic passes CRYPTO data without its encryption level. Only data at
    the level whose read keys were installed last reaches us: aioquic
    drops packets it has no keys for and repeated CRYPTO bytes, so what
    arrives at an older level is new data the peer should not have sent,
    which our handshake then refuses as out of order.
    """

    def __init__(
        self,
        make_handshake: HandshakeFactory,
        *,
        is_client: bool,
        max_message: int = MAX_MESSAGE,
        refusal: str | None = None,
    ) -> None:
        self.handshake_extensions: list[tuple[int, bytes]] = []
        self.alpn_cb: Callable[[str], None] | None = None
        self.update_traffic_key_cb: Callable[
            [aioquic_tls.Direction, aioquic_tls.Epoch, aioquic_tls.CipherSuite, bytes],
            None,
        ] = lambda direction, epoch, suite, secret: None
        # Set by aioquic; resumption goes through our own SessionTicket API.
        self.get_session_ticket_cb: object = None
        self.new_session_ticket_cb: object = None
        self.session_ticket: object = None
        self.certificate: object = None
        self.certificate_chain: object = None
        self.certificate_private_key: object = None

        self.alpn_negotiated: str | None = None
        self.received_extensions: list[tuple[int, bytes]] | None = None
        self.early_data_accepted = False
        self._read_epoch = Epoch.INITIAL
        self.events: list[Event] = []
        self.failure: Exception | None = None
        self._refusal = refusal
        self._is_client = is_client
        self._started = False
        self._complete = False
        self.handshake = make_handshake(
            QuicOptions(self._local_parameters, self._peer_parameters)
        )
        self._quic = QuicTLS(self.handshake, max_message)

    # what aioquic reads -----------------------------------------------------------

    @property
    def state(self) -> aioquic_tls.State:
        """The nearest of aioquic's states (it only tests a few of them)."""
        State = aioquic_tls.State  # noqa: N806 - an enum
        if self._is_client:
            if self._complete:
                return State.CLIENT_POST_HANDSHAKE
            if not self._started:
                return State.CLIENT_HANDSHAKE_START
            if self.handshake.suite is None:
                return State.CLIENT_EXPECT_SERVER_HELLO
            return State.CLIENT_EXPECT_ENCRYPTED_EXTENSIONS
        if self._complete:
            return State.SERVER_POST_HANDSHAKE
        if self.handshake.suite is None:
            return State.SERVER_EXPECT_CLIENT_HELLO
        return State.SERVER_EXPECT_FINISHED

    @property
    def session_resumed(self) -> bool:
        """Whether a ticket's PSK was used."""
        handshake = self.handshake
        if isinstance(handshake, ServerHandshake):
            return handshake.resumed
        return any(isinstance(e, HandshakeComplete) and e.resumed for e in self.events)

    @property
    def legacy_session_id(self) -> bytes:
        """Always empty: the server handshake refuses any other (RFC 9001 §8.4)."""
        return b""

    @property
    def client_random(self) -> bytes:
        """ClientHello(Outer).random, for aioquic's key log (RFC 9850)."""
        return self.handshake.client_random or bytes(32)

    # what aioquic calls -----------------------------------------------------------

    def handle_message(
        self, input_data: bytes, output_buf: dict[aioquic_tls.Epoch, Buffer]
    ) -> None:
        """Feed the peer's CRYPTO data; write ours to ``output_buf``.

        The client's first call, with no data, starts the handshake.

        Raises:
            TLSAlert: close with CRYPTO_ERROR (RFC 9001 §4.8).
            QuicConnectionError: close with PROTOCOL_VIOLATION.
        """
        handshake = self.handshake
        if self._refusal is not None:
            # Refused before any TLS: CONNECTION_REFUSED (RFC 9000 §20.1).
            raise QuicConnectionError(
                error_code=QuicErrorCode.CONNECTION_REFUSED,
                frame_type=QuicFrameType.CRYPTO,
                reason_phrase=self._refusal,
            )
        try:
            if isinstance(handshake, ClientHandshake) and not self._started:
                handshake.start()
                outputs = self._quic.take_outputs()
            else:
                outputs = self._quic.receive(self._read_epoch, input_data)
            self._started = True
        except Alert as alert:
            self.failure = alert
            raise TLSAlert(alert.description, str(alert)) from alert
        except QuicProtocolViolation as error:
            self.failure = error
            raise QuicConnectionError(
                error_code=QuicErrorCode.PROTOCOL_VIOLATION,
                frame_type=QuicFrameType.CRYPTO,
                reason_phrase=str(error),
            ) from error
        # Events first: an abort must not hide the rejection it follows.
        self.events.extend(o for o in outputs if isinstance(o, Event))
        for output in outputs:
            if isinstance(output, SendMessage):
                output_buf[_EPOCHS[output.epoch]].push_bytes(output.data)
            elif isinstance(output, InstallSecret):
                if output.direction is Direction.READ:
                    self._read_epoch = output.epoch
                self.update_traffic_key_cb(
                    _DIRECTIONS[output.direction],
                    _EPOCHS[output.epoch],
                    aioquic_tls.CipherSuite(output.suite.suite),
                    output.secret,
                )
            elif isinstance(output, Abort):
                # ECH rejected (RFC 9849 §6.1.6): CRYPTO_ERROR 0x100 + 121.
                raise TLSAlert(output.description, self._abort_reason())
            elif isinstance(output, HandshakeComplete):
                self._complete = True

    # the transport parameters, both ways -------------------------------------------

    def _local_parameters(self) -> bytes:
        for extension_type, data in self.handshake_extensions:
            if extension_type == ExtensionType.QUIC_TRANSPORT_PARAMETERS:
                return data
        raise RuntimeError("aioquic set no quic_transport_parameters")

    def _peer_parameters(self, parameters: bytes, alpn: str) -> None:
        """Hand them to aioquic, which parses them in its ALPN callback."""
        self.received_extensions = [
            (ExtensionType.QUIC_TRANSPORT_PARAMETERS, parameters)
        ]
        self.alpn_negotiated = alpn
        if self.alpn_cb is not None:
            self.alpn_cb(alpn)

    def _abort_reason(self) -> str:
        for event in self.events:
            if isinstance(event, ECHRejected):
                return f"ECH rejected by {event.public_name}"
        return str(AlertDescription.ECH_REQUIRED)


__all__ = ["TLSAlert", "TLSContext"]
