"""What a strategy draws: a value, its wire bytes, and what a receiver must do.

No hypothesis here: the fuzzing engine (:mod:`ech.fuzz`) and its replays
use these types too. The sealing helper is here for the same reason: a
ClientHelloOuter with an arbitrary (even malformed) EncodedClientHelloInner
needs only the server's *public* ECHConfig (RFC 9849 §6.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from ech import hpke
from ech.config import ECHConfig
from ech.extension import ECHClientHelloOuter
from ech.tls.enums import AlertDescription, ContentType, ExtensionType, HandshakeType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello
from ech.tls.wire import frame_handshake, record_header

T = TypeVar("T", covariant=True)
E = ExtensionType


@dataclass(frozen=True)
class Drawn(Generic[T]):
    """One drawn structure and the bytes to send.

    Attributes:
        value: The structured value. For a broken draw, the value it was
            broken from.
        wire: Its bytes, at the level documented by the strategy (a whole
            handshake message, with its 4-byte header, for messages).
        alert: ``None`` for a well-formed draw; else the alert a receiver
            sends when it refuses these bytes.
        mutation: What was broken, in words (``""`` when nothing was).
        rule: The RFC text that makes the receiver refuse it, e.g.
            ``"RFC 9849 §5.1"``.
        lenient: The RFC forbids *sending* this but names no duty for the
            receiver (duplicated extensions, RFC 8446 §4.2): a receiver
            that goes on is worth a note, not a failure. Our own decoder
            still refuses it with ``alert``.
        tampered: The bytes are well formed but an authenticated ECH field
            was changed after sealing: a server must not accept ECH
            (RFC 9849 §7.1), and has no alert to send for it.
    """

    value: T
    wire: bytes
    alert: AlertDescription | None = None
    mutation: str = ""
    rule: str = ""
    lenient: bool = False
    tampered: bool = False

    @property
    def valid(self) -> bool:
        """Whether these bytes are what a correct peer sends."""
        return self.alert is None and not self.tampered


@dataclass(frozen=True)
class EncodedClientHelloInner:
    """EncodedClientHelloInner (RFC 9849 §5.1) and what it refers to.

    Attributes:
        client_hello_inner: ClientHelloInner as the server must rebuild it,
            with ClientHelloOuter's legacy_session_id (ECH-30).
        client_hello_outer: The ClientHelloOuter it is decoded against.
        outer_extensions: The types ``ech_outer_extensions`` names.
        encoded: The EncodedClientHelloInner bytes (the wire of a draw).
    """

    client_hello_inner: ClientHello
    client_hello_outer: ClientHello
    outer_extensions: tuple[int, ...]
    encoded: bytes


@dataclass(frozen=True)
class SealedClientHello:
    """A ClientHelloOuter carrying a sealed ClientHelloInner (RFC 9849 §6.1).

    Attributes:
        outer: ClientHelloOuter as sent.
        inner: ClientHelloInner as the server must rebuild it.
        encoded: The EncodedClientHelloInner that was sealed.
        config: The ECHConfig it was sealed to.
    """

    outer: ClientHello
    inner: ClientHello
    encoded: bytes
    config: ECHConfig


def handshake_message(msg_type: int, body: bytes) -> bytes:
    """A whole handshake message: type, 24-bit length, body (RFC 8446 §4)."""
    return frame_handshake(msg_type, body)


def plaintext_record(content_type: int, fragment: bytes) -> bytes:
    """One TLSPlaintext record (RFC 8446 §5.1), split if over 2^14 bytes."""
    out = bytearray()
    for start in range(0, max(len(fragment), 1), 1 << 14):
        chunk = fragment[start : start + (1 << 14)]
        out += record_header(content_type, len(chunk)) + chunk
    return bytes(out)


def client_hello_record(wire: bytes) -> bytes:
    """A handshake message (with its header) in TLSPlaintext records."""
    return plaintext_record(ContentType.HANDSHAKE, wire)


def seal_client_hello(
    outer: ClientHello,
    encoded: bytes,
    config: ECHConfig,
    *,
    config_id: int | None = None,
    hello_type: int = 0,
) -> ClientHello:
    """``outer`` with ``encoded`` sealed into its encrypted_client_hello.

    As RFC 9849 §6.1.1 says: the extension goes in with a zero payload of
    the final length (replacing one in place, else appended), that hello is
    the AAD (§5.2), and the sealed payload takes the zeros' place. Only the
    config's public key is used, so any server's published config works.

    Raises:
        ValueError: ``config`` is not usable by a client.
    """
    contents = config.contents
    suite = config.select_suite()
    if contents is None or suite is None:
        raise ValueError("the ECHConfig is not usable")
    enc, context = hpke.setup_base_sender(
        contents.kem_id,
        suite.kdf_id,
        suite.aead_id,
        contents.public_key,
        config.hpke_info(),
    )
    offer = ECHClientHelloOuter(
        suite,
        contents.config_id if config_id is None else config_id,
        enc,
        bytes(len(encoded) + hpke.tag_length(suite.aead_id)),
    )
    placeholder = outer.with_extension(
        Extension(E.ENCRYPTED_CLIENT_HELLO, _with_type(offer.encode(), hello_type))
    )
    payload = context.seal(placeholder.encode(), encoded)
    sealed = offer.with_payload(payload).encode()
    return placeholder.with_extension(
        Extension(E.ENCRYPTED_CLIENT_HELLO, _with_type(sealed, hello_type))
    )


def _with_type(body: bytes, hello_type: int) -> bytes:
    """An ECHClientHello body with another ``ECHClientHelloType`` byte."""
    return bytes((hello_type,)) + body[1:]


def client_hello_wire(hello: ClientHello) -> bytes:
    """A ClientHello as a whole handshake message."""
    return frame_handshake(HandshakeType.CLIENT_HELLO, hello.encode())


__all__ = [
    "Drawn",
    "EncodedClientHelloInner",
    "SealedClientHello",
    "client_hello_record",
    "client_hello_wire",
    "handshake_message",
    "plaintext_record",
    "seal_client_hello",
]
