"""TLS 1.3 handshake message bodies (RFC 8446 §4).

Each message is an immutable value with ``parse(body)`` and ``encode()``.
``framed()`` adds the 4-byte handshake header. For every
body that parses, ``type(m).parse(body).encode() == body``: extensions stay
raw and in wire order, which ECH's AAD and outer-extension compression
depend on.

Being immutable, a hello remembers its body once known: a parsed one
keeps the bytes it was parsed from, a built one its first encoding. So the
transcript, ECH's ClientHelloOuterAAD (RFC 9849 §5.2) and its acceptance
confirmation (§7.2) never encode the same message twice, and a copy that
changes one fixed-size field (:meth:`ServerHello.with_random`,
:meth:`Message.encode_with_extension_body`) is spliced from those bytes
rather than re-encoded field by field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Self

from ech.tls.enums import TLS12, HandshakeType
from ech.tls.errors import IllegalParameter
from ech.tls.extensions import (
    Extension,
    HasExtensions,
    encode_extensions,
    read_extensions,
    write_extensions,
)
from ech.tls.wire import (
    Reader,
    Writer,
    encode_opaque,
    encode_u16_list,
    handshake_header,
)

#: ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest").
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
#: Hello.random: ``opaque Random[32]`` (RFC 8446 §4.1.2, §4.1.3).
_RANDOM_LENGTH = 32


def replace_extension(
    extensions: tuple[Extension, ...], ext: Extension
) -> tuple[Extension, ...]:
    """Replace the first extension of ``ext.type`` in place, or append it."""
    for i, old in enumerate(extensions):
        if old.type == ext.type:
            return (*extensions[:i], ext, *extensions[i + 1 :])
    return (*extensions, ext)


def _hello_extensions(extensions: tuple[Extension, ...], absent: bool) -> bytes:
    """A hello's extension block, or nothing for an old hello without one."""
    return encode_extensions(extensions) if extensions or not absent else b""


class Message(HasExtensions):
    """Base of the handshake message values."""

    __slots__ = ()
    msg_type: ClassVar[HandshakeType]
    extensions: tuple[Extension, ...] = ()

    @classmethod
    def parse(cls, body: bytes) -> Self:
        """Decode a message body (without the handshake header).

        Raises:
            DecodeError: the body is malformed.
        """
        r = Reader(body)
        msg = cls._read(r)
        r.expect_end()
        return msg

    @classmethod
    def read(cls, r: Reader) -> Self:
        """Decode one message body from ``r``, leaving what follows it."""
        return cls._read(r)

    @classmethod
    def _read(cls, r: Reader) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        """Encode the body (without the handshake header)."""
        return self._encode_body()

    def _encode_body(self) -> bytes:
        w = Writer()
        self._write(w)
        return w.getvalue()

    def _write(self, w: Writer) -> None:
        raise NotImplementedError

    def framed(self) -> bytes:
        """The whole message: type, 24-bit length and body (RFC 8446 §4)."""
        body = self.encode()
        return handshake_header(self.msg_type, len(body)) + body

    def encode_with_extension_body(self, ext_type: int, data: bytes) -> bytes:
        """The body with the first ``ext_type`` extension's data set to ``data``.

        ``data`` must be as long as the data it replaces, so every length
        prefix stays as it is and only those bytes change: the result equals
        ``self.with_extension(Extension(ext_type, data)).encode()``, but is
        spliced from :meth:`encode` (the bytes received, for a parsed
        message) instead of re-encoding every field. ClientHelloOuterAAD
        (RFC 9849 §5.2) is such a body. The extension block ends every
        message that has one (RFC 8446 §4), so the extensions after this
        one are the body's tail.

        Raises:
            ValueError: no ``ext_type`` extension, or ``data`` of another
                length (our mistake, not the peer's).
        """
        # One pass: find the first ext_type, then sum what follows it. The
        # byte offsets come from the model's own lengths; this module and
        # wire.py are the codec, where bytes may be cut.
        old_length = -1
        tail = 0
        for ext in self.extensions:
            if old_length >= 0:
                tail += 4 + len(ext.data)
            elif ext.type == ext_type:
                old_length = len(ext.data)
        if old_length < 0:
            raise ValueError(f"no extension {ext_type:#06x} to replace")
        if old_length != len(data):
            raise ValueError("a replacement extension body must keep its length")
        body = self.encode()
        end = len(body) - tail
        return b"".join((body[: end - old_length], data, body[end:]))

    def with_extension(self, ext: Extension) -> Self:
        """A copy with ``ext`` replacing its namesake in place (or appended)."""
        return self.with_extensions(replace_extension(self.extensions, ext))

    def with_extensions(self, extensions: tuple[Extension, ...]) -> Self:
        """A copy with another extension block."""
        return dataclasses.replace(  # type: ignore[type-var]  # subclasses are dataclasses
            self, extensions=extensions
        )

    def without_extension(self, ext_type: int) -> Self:
        """A copy with every extension of ``ext_type`` removed."""
        return dataclasses.replace(  # type: ignore[type-var]  # subclasses are dataclasses
            self, extensions=tuple(e for e in self.extensions if e.type != ext_type)
        )


class _Hello(Message):
    """A message that keeps its body once known: ClientHello and ServerHello.

    Their bytes are what ECH reuses (ClientHelloOuterAAD, the confirmation's
    transcript), and what a copy changing one fixed-size field is spliced
    from. Other messages are encoded once and parsed once, so they keep
    nothing.
    """

    __slots__ = ("_encoding",)
    #: The body, once known: not a dataclass field, so neither compared nor
    #: copied by ``dataclasses.replace`` (whose copy encodes afresh).
    _encoding: bytes

    @classmethod
    def parse(cls, body: bytes) -> Self:
        """Decode a body, and keep it.

        As the codec round-trips exactly, it is what :meth:`encode` would
        build, and what the peer hashed.

        Raises:
            DecodeError: the body is malformed.
        """
        body = body if type(body) is bytes else bytes(body)
        msg = super().parse(body)
        msg._remember(body)
        return msg

    def _remember(self, body: bytes) -> None:
        # The one write to a frozen message: a cache of what encode() returns.
        object.__setattr__(self, "_encoding", body)

    def encode(self) -> bytes:
        """Encode the body (without the handshake header), once per message."""
        # getattr's default: a miss (every built hello, once) costs less
        # than catching AttributeError.
        body: bytes | None = getattr(self, "_encoding", None)
        if body is None:
            body = self._encode_body()
            self._remember(body)
        return body


@dataclass(frozen=True, slots=True)
class ClientHello(_Hello):
    """RFC 8446 §4.1.2."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.CLIENT_HELLO
    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    extensions: tuple[Extension, ...]
    legacy_version: int = TLS12
    legacy_compression_methods: bytes = b"\x00"
    #: RFC 8446 §4.1.2: a hello from an earlier TLS may end right after
    #: legacy_compression_methods. Such a hello offers no TLS 1.3 (a server
    #: answers protocol_version, not decode_error); kept so it re-encodes.
    extensions_absent: bool = False

    @classmethod
    def _read(cls, r: Reader) -> Self:
        legacy_version = r.u16()
        random = r.raw(_RANDOM_LENGTH)
        session_id = r.opaque(1, max_len=32)
        suites = r.u16_items(2, min_len=2)
        compression = r.opaque(1, min_len=1)
        if not r.remaining():
            return cls(
                random, session_id, suites, (), legacy_version, compression, True
            )
        extensions = read_extensions(r, min_len=8)
        return cls(random, session_id, suites, extensions, legacy_version, compression)

    def with_extensions(self, extensions: tuple[Extension, ...]) -> Self:
        """A copy with another extension block (ClientHelloOuterAAD, §5.2)."""
        # Built directly: dataclasses.replace costs twice as much, on a hot path.
        return type(self)(
            self.random,
            self.legacy_session_id,
            self.cipher_suites,
            extensions,
            self.legacy_version,
            self.legacy_compression_methods,
            self.extensions_absent,
        )

    def _encode_body(self) -> bytes:
        # Joined in one step, not through a Writer: every handshake encodes
        # a hello (and an ECH server its ClientHelloInner).
        return b"".join(
            (
                self.legacy_version.to_bytes(2, "big"),
                self.random,
                encode_opaque(1, self.legacy_session_id),
                encode_u16_list(self.cipher_suites, 2),
                encode_opaque(1, self.legacy_compression_methods),
                _hello_extensions(self.extensions, self.extensions_absent),
            )
        )


@dataclass(frozen=True, slots=True)
class ServerHello(_Hello):
    """RFC 8446 §4.1.3; also HelloRetryRequest (§4.1.4), told apart by ``random``."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.SERVER_HELLO
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    extensions: tuple[Extension, ...]
    legacy_version: int = TLS12
    legacy_compression_method: int = 0
    #: As for ClientHello: a TLS 1.2 ServerHello may end after the
    #: compression method; it does not negotiate TLS 1.3 (protocol_version).
    extensions_absent: bool = False

    @property
    def is_hello_retry_request(self) -> bool:
        """RFC 8446 §4.1.3: an HRR carries the special random value."""
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    @classmethod
    def _read(cls, r: Reader) -> Self:
        legacy_version = r.u16()
        random = r.raw(_RANDOM_LENGTH)
        session_id = r.opaque(1, max_len=32)
        suite = r.u16()
        compression = r.u8()
        if not r.remaining():
            return cls(random, session_id, suite, (), legacy_version, compression, True)
        extensions = read_extensions(r, min_len=6)
        return cls(random, session_id, suite, extensions, legacy_version, compression)

    def _encode_body(self) -> bytes:
        # As ClientHello's: one join, since every handshake sends one.
        return b"".join(
            (
                self.legacy_version.to_bytes(2, "big"),
                self.random,
                encode_opaque(1, self.legacy_session_id_echo),
                self.cipher_suite.to_bytes(2, "big"),
                bytes((self.legacy_compression_method,)),
                _hello_extensions(self.extensions, self.extensions_absent),
            )
        )

    def with_random(self, random: bytes) -> Self:
        """A copy with another ``random`` (ECH confirmation zeroes its tail).

        If this message's body is known, the copy's is spliced from it:
        ``random`` is a fixed 32 bytes right after legacy_version (RFC 8446
        §4.1.3), so nothing else moves (RFC 9849 §7.2 encodes the
        ServerHello twice, the confirmation zeroed, then in place).
        """
        # Built directly: dataclasses.replace costs twice as much, on a hot path.
        copy = type(self)(
            random,
            self.legacy_session_id_echo,
            self.cipher_suite,
            self.extensions,
            self.legacy_version,
            self.legacy_compression_method,
            self.extensions_absent,
        )
        body: bytes | None = getattr(self, "_encoding", None)
        if body is not None and len(random) == len(self.random) == _RANDOM_LENGTH:
            copy._remember(b"".join((body[:2], random, body[2 + _RANDOM_LENGTH :])))
        return copy


@dataclass(frozen=True, slots=True)
class EncryptedExtensions(Message):
    """RFC 8446 §4.3.1."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.ENCRYPTED_EXTENSIONS
    extensions: tuple[Extension, ...] = ()

    @classmethod
    def _read(cls, r: Reader) -> Self:
        return cls(read_extensions(r))

    def _write(self, w: Writer) -> None:
        write_extensions(w, self.extensions)


@dataclass(frozen=True, slots=True)
class CertificateRequest(Message):
    """RFC 8446 §4.3.2."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE_REQUEST
    certificate_request_context: bytes
    extensions: tuple[Extension, ...]

    @classmethod
    def _read(cls, r: Reader) -> Self:
        context = r.opaque(1)
        return cls(context, read_extensions(r, min_len=2))

    def _write(self, w: Writer) -> None:
        w.opaque(1, self.certificate_request_context)
        write_extensions(w, self.extensions)


@dataclass(frozen=True, slots=True)
class CertificateEntry(HasExtensions):
    """One ``CertificateEntry`` of an X.509 chain (RFC 8446 §4.4.2)."""

    cert_data: bytes
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True, slots=True)
class Certificate(Message):
    """RFC 8446 §4.4.2 (X.509 certificate type only)."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE
    certificate_request_context: bytes
    certificate_list: tuple[CertificateEntry, ...]

    @classmethod
    def _read(cls, r: Reader) -> Self:
        context = r.opaque(1)

        def entry() -> CertificateEntry:
            cert_data = r.opaque(3, min_len=1)
            return CertificateEntry(cert_data, read_extensions(r))

        return cls(context, tuple(r.items(3, entry)))

    def _write(self, w: Writer) -> None:
        w.opaque(1, self.certificate_request_context)
        with w.vector(3):
            for entry in self.certificate_list:
                w.opaque(3, entry.cert_data)
                write_extensions(w, entry.extensions)


@dataclass(frozen=True, slots=True)
class CertificateVerify(Message):
    """RFC 8446 §4.4.3."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE_VERIFY
    algorithm: int
    signature: bytes

    @classmethod
    def _read(cls, r: Reader) -> Self:
        algorithm = r.u16()
        return cls(algorithm, r.opaque(2))

    def _write(self, w: Writer) -> None:
        w.u16(self.algorithm)
        w.opaque(2, self.signature)


@dataclass(frozen=True, slots=True)
class Finished(Message):
    """RFC 8446 §4.4.4. The length of ``verify_data`` is checked by the caller."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.FINISHED
    verify_data: bytes

    @classmethod
    def _read(cls, r: Reader) -> Self:
        return cls(r.rest())

    def _write(self, w: Writer) -> None:
        w.raw(self.verify_data)


@dataclass(frozen=True, slots=True)
class NewSessionTicket(Message):
    """RFC 8446 §4.6.1."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.NEW_SESSION_TICKET
    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: tuple[Extension, ...] = ()

    @classmethod
    def _read(cls, r: Reader) -> Self:
        lifetime = r.u32()
        age_add = r.u32()
        nonce = r.opaque(1)
        ticket = r.opaque(2, min_len=1)
        return cls(lifetime, age_add, nonce, ticket, read_extensions(r))

    def _write(self, w: Writer) -> None:
        w.u32(self.ticket_lifetime)
        w.u32(self.ticket_age_add)
        w.opaque(1, self.ticket_nonce)
        w.opaque(2, self.ticket)
        write_extensions(w, self.extensions)


@dataclass(frozen=True, slots=True)
class KeyUpdate(Message):
    """RFC 8446 §4.6.3."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.KEY_UPDATE
    request_update: int

    @classmethod
    def _read(cls, r: Reader) -> Self:
        value = r.u8()
        if value > 1:
            # RFC 8446 §4.6.3: any other value is illegal_parameter.
            raise IllegalParameter("KeyUpdate request_update out of range")
        return cls(value)

    def _write(self, w: Writer) -> None:
        w.u8(self.request_update)


@dataclass(frozen=True, slots=True)
class EndOfEarlyData(Message):
    """RFC 8446 §4.5: an empty body."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.END_OF_EARLY_DATA

    @classmethod
    def _read(cls, r: Reader) -> Self:
        return cls()

    def _write(self, w: Writer) -> None:
        pass


MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.msg_type: cls
    for cls in (
        ClientHello,
        ServerHello,
        EncryptedExtensions,
        CertificateRequest,
        Certificate,
        CertificateVerify,
        Finished,
        NewSessionTicket,
        KeyUpdate,
        EndOfEarlyData,
    )
}
