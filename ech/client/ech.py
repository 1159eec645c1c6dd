"""The client's side of ECH (RFC 9849 §6): offer, GREASE, and the outer hello.

ECH is a transform over ClientHello values: :class:`ECHOffer` takes the
ClientHelloInner the client built as usual and returns the ClientHelloOuter
to send. The TLS codec never learns about it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import x25519

from ech import hpke
from ech.config import ECHConfig, ECHConfigList, HpkeSymmetricCipherSuite
from ech.extension import (
    INNER_BODY,
    ECHClientHelloOuter,
    parse_client_hello_extension,
)
from ech.inner import compress, padding_length
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension, OfferedPsks, PskIdentity
from ech.tls.messages import ClientHello
from ech.tls.transcript import Transcript

E = ExtensionType

#: Extensions copied unchanged from ClientHelloInner into ClientHelloOuter and
#: sent there only: ``ech_outer_extensions`` names them (RFC 9849 §5.1). Our
#: hellos generate them contiguously and in this order.
COMPRESSED_EXTENSIONS: tuple[int, ...] = (
    E.SUPPORTED_GROUPS,
    E.SIGNATURE_ALGORITHMS,
    E.SIGNATURE_ALGORITHMS_CERT,
    E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
    E.SUPPORTED_VERSIONS,
    E.PSK_KEY_EXCHANGE_MODES,
    E.KEY_SHARE,
    # Over QUIC: the same parameters inside and out, so a rejected handshake
    # completes with the outer hello (RFC 9001 §8.2).
    E.QUIC_TRANSPORT_PARAMETERS,
)
_COMPRESSED = frozenset(COMPRESSED_EXTENSIONS)

#: The suite GREASE ECH claims: the mandatory-to-implement one (§9).
GREASE_SUITE = HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)


@dataclasses.dataclass(frozen=True)
class SealTamper:
    """Faults :meth:`ECHOffer.seal` puts in on purpose: a seam for probes and tests.

    A conformance probe must send ClientHelloOuters that a correct client
    never would (RFC 9849 §5.1, §7.1, §7.1.1): an EncodedClientHelloInner
    with non-zero padding or a bad ``ech_outer_extensions``, a second
    ClientHelloOuter with another config_id, a payload that does not open.
    Each callable gets the offer (``offer.sealed_once`` is True while the
    second ClientHelloOuter, after HelloRetryRequest, is built) and returns
    its replacement; None leaves that step alone. Whatever is sent also goes
    into the client's transcript.

    Attributes:
        cipher_suite: seal with this HPKE suite instead of the config's first
            usable one; it may be one the config does not list.
        encoded_inner: rewrites EncodedClientHelloInner (§5.1) before it is
            encrypted; the payload length follows.
        outer: rewrites ClientHelloOuter before it becomes the AAD (§5.2);
            its encrypted_client_hello carries the cipher_suite, config_id
            and enc to send and an all-zero payload of the final length,
            and must stay an outer ECHClientHello of that payload length.
        sealed: rewrites the finished ClientHelloOuter (e.g. corrupts or
            removes its encrypted_client_hello).
    """

    cipher_suite: HpkeSymmetricCipherSuite | None = None
    encoded_inner: Callable[[ECHOffer, bytes], bytes] | None = None
    outer: Callable[[ECHOffer, ClientHello], ClientHello] | None = None
    sealed: Callable[[ECHOffer, ClientHello], ClientHello] | None = None


#: A correct client's seal: no faults.
_NO_TAMPER = SealTamper()
_INNER_MARKER = Extension(E.ENCRYPTED_CLIENT_HELLO, INNER_BODY)


@functools.lru_cache(maxsize=64)
def select_config(configs: ECHConfigList) -> ECHConfig | None:
    """The first config we can use, in the server's order (ECH-5 to ECH-9).

    Decided once per list: an ECHConfigList is immutable and the choice
    depends on nothing else, while checking every config (KEM, suites,
    extensions, public_name syntax) is work each connection would repeat.
    """
    usable = configs.usable()
    return usable[0] if usable else None


def inner_marker() -> Extension:
    """The inner-form encrypted_client_hello that ClientHelloInner carries (ECH-20)."""
    return _INNER_MARKER


@functools.lru_cache(maxsize=64)
def _public_name_extension(public_name: str) -> Extension:
    """ClientHelloOuter's server_name (ECH-42), encoded once per public_name."""
    return Extension(E.SERVER_NAME, ext.encode_server_name(public_name))


def _outer_extensions(
    inner: ClientHello, public_name: str, random: Callable[[int], bytes]
) -> list[Extension]:
    """ClientHelloOuter's extensions before the ECH one (RFC 9849 §6.1).

    Copies ClientHelloInner's, except: server_name names the public name
    (ECH-42); the inner ECH marker goes; a real pre_shared_key is replaced by a
    GREASE one (ECH-44), which stays last.
    """
    out: list[Extension] = []
    grease_psk: Extension | None = None
    outer_name = _public_name_extension(public_name)
    for extension in inner.extensions:
        if extension.type == E.SERVER_NAME:
            out.append(outer_name)
        elif extension.type == E.ENCRYPTED_CLIENT_HELLO:
            continue
        elif extension.type == E.PRE_SHARED_KEY:
            grease_psk = Extension(
                E.PRE_SHARED_KEY, grease_psk_body(extension.data, random)
            )
        else:
            out.append(extension)
    if not inner.has_extension(E.SERVER_NAME):
        out.insert(0, outer_name)
    if grease_psk is not None:
        out.append(grease_psk)
    return out


def grease_psk_body(real: bytes, random: Callable[[int], bytes]) -> bytes:
    """A pre_shared_key shaped like ``real`` but random (RFC 9849 §6.1.2, ECH-45)."""
    offered = OfferedPsks.parse(real)
    return OfferedPsks(
        tuple(
            PskIdentity(random(len(i.identity)), int.from_bytes(random(4), "big"))
            for i in offered.identities
        ),
        tuple(random(len(b)) for b in offered.binders),
    ).encode()


def _insert_before_psk(extensions: list[Extension], extension: Extension) -> None:
    """Add ``extension`` last, but before pre_shared_key, which must stay last."""
    if extensions and extensions[-1].type == E.PRE_SHARED_KEY:
        extensions.insert(len(extensions) - 1, extension)
    else:
        extensions.append(extension)


def _encoded_inner(inner: ClientHello, maximum_name_length: int) -> bytes:
    """EncodedClientHelloInner with the recommended padding (§5.1, §6.1.3)."""
    compressed = compress(inner, _COMPRESSED)
    sni = inner.extension(E.SERVER_NAME)
    name_length = len(ext.decode_server_name(sni)) if sni is not None else None
    encoded = compressed.encode()  # once: its length sets the padding
    padding = padding_length(len(encoded), name_length, maximum_name_length)
    return encoded + bytes(padding)  # as encode_client_hello_inner does


@dataclasses.dataclass
class ECHOffer:
    """A real ECH offer: the chosen config, the HPKE context, the inner state.

    Attributes:
        config: the ECHConfig chosen (its public_name is sent in the clear).
        suite: the HPKE symmetric suite chosen from the config.
        enc: the HPKE encapsulated key, sent in the first ClientHelloOuter.
        inner_transcript: the transcript as if ClientHelloInner had been sent.
        inner_hello: the latest ClientHelloInner.
        outer_random: ClientHelloOuter.random, reused after HelloRetryRequest.
        hrr_accepted: what the HelloRetryRequest confirmation said, if any.
    """

    config: ECHConfig
    suite: HpkeSymmetricCipherSuite
    enc: bytes
    context: hpke.SenderContext
    outer_random: bytes
    inner_transcript: Transcript = dataclasses.field(default_factory=Transcript)
    inner_hello: ClientHello | None = None
    hrr_accepted: bool | None = None
    sealed_once: bool = False
    tamper: SealTamper | None = None

    @classmethod
    def start(
        cls,
        config: ECHConfig,
        random: Callable[[int], bytes],
        tamper: SealTamper | None = None,
    ) -> ECHOffer:
        """Set up the HPKE sender context for ``config`` (ECH-37).

        ``tamper`` is the fault-injection seam (:class:`SealTamper`); a
        correct client passes None.
        """
        contents = config.contents
        suite = config.select_suite()
        if tamper is not None and tamper.cipher_suite is not None:
            suite = tamper.cipher_suite
        if contents is None or suite is None:
            raise ValueError("ECHConfig is not usable")
        enc, context = hpke.setup_base_sender(
            contents.kem_id,
            suite.kdf_id,
            suite.aead_id,
            contents.public_key,
            config.hpke_info(),
        )
        return cls(config, suite, enc, context, random(32), tamper=tamper)

    @property
    def public_name(self) -> str:
        """The name ClientHelloOuter carries."""
        return self.config.public_name

    def seal(self, inner: ClientHello, random: Callable[[int], bytes]) -> ClientHello:
        """ClientHelloOuter for ``inner`` (RFC 9849 §6.1.1, ECH-48).

        The ECH extension is placed with an all-zero payload of the final
        length, the hello serialized as AAD, and the payload sealed and put in
        its place: the AAD is built from the model, never by searching bytes.
        After HelloRetryRequest the same context seals again with empty enc
        (ECH-58).
        """
        contents = self.config.contents
        if contents is None:
            raise RuntimeError("internal error: unusable ECHConfig")
        self.inner_hello = inner
        tamper = self.tamper or _NO_TAMPER
        encoded = _encoded_inner(inner, contents.maximum_name_length)
        if tamper.encoded_inner is not None:
            encoded = tamper.encoded_inner(self, encoded)
        extensions = _outer_extensions(inner, self.public_name, random)
        enc = b"" if self.sealed_once else self.enc
        placeholder = ECHClientHelloOuter(
            self.suite,
            contents.config_id,
            enc,
            bytes(len(encoded) + hpke.tag_length(self.suite.aead_id)),
        )
        _insert_before_psk(
            extensions, Extension(E.ENCRYPTED_CLIENT_HELLO, placeholder.encode())
        )
        outer = ClientHello(
            random=self.outer_random,
            legacy_session_id=inner.legacy_session_id,  # ECH-40
            cipher_suites=inner.cipher_suites,
            extensions=tuple(extensions),
            legacy_version=inner.legacy_version,
        )
        if tamper.outer is not None:
            outer = tamper.outer(self, outer)
            data = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
            tampered = parse_client_hello_extension(data) if data else None
            if tampered is None or len(tampered.payload) != len(placeholder.payload):
                raise ValueError("SealTamper.outer must keep the outer ECH payload")
            placeholder = tampered
        payload = self.context.seal(outer.encode(), encoded)
        sealed_hello = outer.with_extension(
            Extension(
                E.ENCRYPTED_CLIENT_HELLO, placeholder.with_payload(payload).encode()
            )
        )
        if tamper.sealed is not None:
            sealed_hello = tamper.sealed(self, sealed_hello)
        self.sealed_once = True
        return sealed_hello


def grease_extension(
    hello: ClientHello, random: Callable[[int], bytes], maximum_name_length: int = 0
) -> Extension:
    """A GREASE encrypted_client_hello for ``hello`` (RFC 9849 §6.2.1, ECH-69).

    Random config_id, a valid X25519 encapsulation, and a payload as long as
    a real one would be for this hello, so GREASE and real ECH look alike on
    the wire (ECH-99).
    """
    would_be_inner = hello.with_extension(inner_marker())
    encoded = _encoded_inner(would_be_inner, maximum_name_length)
    enc = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    grease = ECHClientHelloOuter(
        GREASE_SUITE,
        random(1)[0],
        enc,
        random(len(encoded) + hpke.tag_length(GREASE_SUITE.aead_id)),
    )
    return Extension(E.ENCRYPTED_CLIENT_HELLO, grease.encode())


def with_extension_before_psk(hello: ClientHello, extension: Extension) -> ClientHello:
    """``hello`` with ``extension`` added, keeping pre_shared_key last."""
    extensions = [e for e in hello.extensions if e.type != extension.type]
    _insert_before_psk(extensions, extension)
    return hello.with_extensions(tuple(extensions))
