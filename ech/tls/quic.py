"""TLS 1.3 handshakes carried by QUIC CRYPTO frames (RFC 9001), sans-IO.

Over QUIC there is no record layer (RFC 9001 §4): handshake messages travel
in CRYPTO frames of the packet number space of their encryption level, and
the traffic secrets go to QUIC packet protection. :class:`QuicTLS` carries a
:class:`~ech.tls.handshake.Handshake` that way: :meth:`QuicTLS.receive`
takes the CRYPTO stream bytes of one epoch and returns what to do, in order.
The QUIC implementation (aioquic, through :mod:`ech.quic`; or a test driving
Go's ``tls.QUICConn``) applies it.

What QUIC changes in the handshake itself (RFC 9001 §8) is the handshakes'
business, switched on by :class:`QuicOptions`: the
``quic_transport_parameters`` extension (0x39) in ClientHello and
EncryptedExtensions, ALPN required, no middlebox compatibility mode.
KeyUpdate and EndOfEarlyData never reach a handshake's state machine, so
receiving one is ``unexpected_message`` (RFC 9001 §6, §8.3).

0-RTT is out of scope over QUIC: the handshakes in QUIC mode never offer
early data (a client asking for it gets ``ValueError``), never accept it,
and never advertise it in NewSessionTicket, so the QUIC layer only ever
discards 0-RTT packets (RFC 9001 §4.6.2). Only AES-GCM and
ChaCha20-Poly1305 suites are offered or chosen: aioquic's packet protection
implements those, and RFC 9001 §5.3 forbids TLS_AES_128_CCM_8_SHA256.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ech.tls.errors import Alert, TLSError
from ech.tls.handshake import (
    Direction,
    Epoch,
    Handshake,
    InstallSecret,
    Output,
    SendChangeCipherSpec,
    SkipEarlyData,
)
from ech.tls.records import HandshakeReassembler

#: QUIC's CRYPTO_ERROR range: 0x0100 plus the TLS alert (RFC 9001 §4.8).
CRYPTO_ERROR: Final = 0x100

#: QUIC's PROTOCOL_VIOLATION error code (RFC 9000 §20.1).
PROTOCOL_VIOLATION: Final = 0x0A

#: Largest handshake message buffered per epoch (certificate chains).
MAX_MESSAGE: Final = 1 << 18


@dataclass(frozen=True)
class QuicOptions:
    """What a handshake needs to run over QUIC (RFC 9001 §8).

    Attributes:
        transport_parameters: our ``quic_transport_parameters`` (the QUIC
            implementation encodes them), read when the ClientHello
            (client) or EncryptedExtensions (server) is built.
        on_peer_transport_parameters: called with the peer's transport
            parameters and the negotiated ALPN protocol as soon as they are
            known: on the server before its flight is built (so it may still
            change what :attr:`transport_parameters` returns), on the client
            when EncryptedExtensions arrives. It may raise to refuse them.
    """

    transport_parameters: Callable[[], bytes]
    on_peer_transport_parameters: Callable[[bytes, str], None] | None = None


class QuicProtocolViolation(TLSError):
    """A QUIC-level error the TLS layer detects (RFC 9000 §20.1).

    Raised for what RFC 9001 names a PROTOCOL_VIOLATION rather than a TLS
    alert: a ClientHello asking for middlebox compatibility mode (§8.4).
    """

    error_code: Final = PROTOCOL_VIOLATION


def crypto_error_code(alert: Alert | int) -> int:
    """The QUIC error code of a TLS alert (RFC 9001 §4.8)."""
    description = alert.description if isinstance(alert, Alert) else alert
    return CRYPTO_ERROR + int(description)


class QuicTLS:
    """One handshake over QUIC CRYPTO streams. Performs no I/O.

    Args:
        handshake: a client or server handshake made with :class:`QuicOptions`.
    """

    def __init__(self, handshake: Handshake, max_message: int = MAX_MESSAGE) -> None:
        self.handshake = handshake
        self._streams = {
            epoch: HandshakeReassembler(max_message)
            for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.APPLICATION)
        }

    def receive(self, epoch: Epoch, data: bytes) -> list[Output]:
        """Take CRYPTO stream bytes of ``epoch`` (in order, any split).

        Returns:
            What to do, in order: messages to send per epoch, secrets to
            install, an abort, events. Never a change_cipher_spec.

        Raises:
            Alert: the peer broke the protocol; close with
                :func:`crypto_error_code`.
            QuicProtocolViolation: close with PROTOCOL_VIOLATION.
        """
        stream = self._streams.get(epoch)
        if stream is None:
            raise ValueError(f"no CRYPTO stream at {epoch.name} (0-RTT has none)")
        stream.feed(data)
        outputs: list[Output] = []
        while (message := stream.pop()) is not None:
            msg_type, body, _ = message
            self.handshake.handle_message(epoch, msg_type, body)
            for output in self.take_outputs():
                if (
                    isinstance(output, InstallSecret)
                    and output.direction is Direction.READ
                ):
                    # No message may span a key change (RFC 8446 §5.1): here,
                    # the end of an epoch's messages (RFC 9001 §4.1.3).
                    for lower, pending in self._streams.items():
                        if lower < output.epoch:
                            pending.check_key_change()
                outputs.append(output)
        return outputs

    def take_outputs(self) -> list[Output]:
        """What the handshake asked for since the last call (after ``start``)."""
        outputs = self.handshake.take_outputs()
        if any(isinstance(o, SendChangeCipherSpec | SkipEarlyData) for o in outputs):
            raise RuntimeError("internal error: a TCP-only output over QUIC")
        return outputs
