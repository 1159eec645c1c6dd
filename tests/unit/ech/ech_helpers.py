"""Shared helpers for the ECH unit tests: PKI, keys, pairs, hand-built hellos.

The clients use X25519 key shares only (no ML-KEM) and the leaves are
Ed25519, so a full handshake costs a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes

import ech
from ech import hpke
from ech.client.ech import COMPRESSED_EXTENSIONS, with_extension_before_psk
from ech.config import ECHConfigList, HpkeSymmetricCipherSuite
from ech.errors import ConnectionClosedError
from ech.extension import ECHClientHelloOuter, parse_client_hello_extension
from ech.inner import compress, decode_client_hello_inner, encode_client_hello_inner
from ech.keys import DEFAULT_SUITES, ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.server.ech import (
    ECHAccepted,
    client_hello_outer_aad,
    index_keys,
    open_client_hello,
)
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import ContentType, ExtensionType, HandshakeType, NamedGroup
from ech.tls.extensions import Extension
from ech.tls.key_schedule import hkdf_expand_label, hkdf_extract
from ech.tls.messages import ClientHello, ServerHello
from tests.helpers import (
    SERVER_NAME,
    Pair,
    build_record,
    frame,
    join_records,
    parse_records,
    split_handshake,
)

E = ExtensionType
INNER_NAME = SERVER_NAME
PUBLIC_NAME = "public.example"
MTI = HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
CHACHA = HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


# PKI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A CA and leaves for the inner name, the public name, or both."""

    ca: TestCA
    both: CertifiedKey
    inner_only: CertifiedKey
    public_only: CertifiedKey


@functools.cache
def pki() -> Pki:
    """One CA for the whole ECH test run (Ed25519 leaves: fast to verify)."""
    ca = TestCA.create("ech unit test CA")
    return Pki(
        ca=ca,
        both=ca.issue(INNER_NAME, PUBLIC_NAME, key_type="ed25519"),
        inner_only=ca.issue(INNER_NAME, key_type="ed25519"),
        public_only=ca.issue(PUBLIC_NAME, key_type="ed25519"),
    )


# keys and configs ---------------------------------------------------------------------


def ech_key(
    config_id: int = 7,
    *,
    maximum_name_length: int = 0,
    public_name: str = PUBLIC_NAME,
    cipher_suites: tuple[HpkeSymmetricCipherSuite, ...] = DEFAULT_SUITES,
) -> ECHKey:
    """A fresh X25519 ECH key."""
    return generate_ech_key(
        public_name,
        config_id=config_id,
        maximum_name_length=maximum_name_length,
        cipher_suites=cipher_suites,
    )


def config_list(*keys: ECHKey) -> ECHConfigList:
    """The ECHConfigList publishing ``keys``."""
    return ECHConfigList(tuple(k.config for k in keys))


def client_config(**overrides: Any) -> ech.ClientConfig:
    """A client trusting :func:`pki`, with one X25519 key share."""
    base = ech.ClientConfig(
        trust_store=(pki().ca.certificate,),
        key_share_groups=(NamedGroup.X25519,),
    )
    return dataclasses.replace(base, **overrides)


def server_config(*keys: ECHKey, **overrides: Any) -> ech.ServerConfig:
    """A server with a leaf for both names and ``keys`` as ECH keys."""
    base = ech.ServerConfig(certificates=(pki().both,), ech_keys=tuple(keys))
    return dataclasses.replace(base, **overrides)


def hrr_client_config(**overrides: Any) -> ech.ClientConfig:
    """A client whose only key share (X25519) the HRR server does not take."""
    return client_config(groups=(NamedGroup.X25519, NamedGroup.SECP256R1), **overrides)


def hrr_server_config(*keys: ECHKey, **overrides: Any) -> ech.ServerConfig:
    """A server that wants P-256, so an X25519-only client gets an HRR."""
    return server_config(*keys, groups=(NamedGroup.SECP256R1,), **overrides)


# pairs --------------------------------------------------------------------------------


def ech_pair(
    cc: ech.ClientConfig,
    sc: ech.ServerConfig,
    configs: ECHConfigList | None,
    server_name: str | None = INNER_NAME,
    session: ech.SessionTicket | None = None,
) -> Pair:
    """A started ECH client and a fresh server; nothing delivered yet."""
    client = ech.ClientConnection(cc, server_name, session=session, ech_configs=configs)
    client.start()
    return Pair(client, ech.ServerConnection(sc), [], [], [])


def pump_to_end(pair: Pair, max_rounds: int = 20) -> None:
    """Pump until quiet, or until the client has failed and refuses more data.

    After an ECH rejection the client aborts with ``ech_required``; the
    server's tickets then reach a dead client, which refuses them.
    """
    for _ in range(max_rounds):
        moved = pair.to_server()
        try:
            moved += pair.to_client()
        except ConnectionClosedError:
            return
        if not moved:
            return
    raise AssertionError("connections never went quiet")


# hellos on the wire -------------------------------------------------------------------


def hello_record(hello: ClientHello) -> bytes:
    """A plaintext handshake record carrying ``hello``."""
    return build_record(
        ContentType.HANDSHAKE, frame(HandshakeType.CLIENT_HELLO, hello.encode())
    )


def handshake_messages(data: bytes) -> list[tuple[int, bytes]]:
    """``(msg_type, body)`` of every plaintext handshake message in ``data``."""
    out: list[tuple[int, bytes]] = []
    for content_type, fragment in parse_records(data):
        if content_type == ContentType.HANDSHAKE:
            out.extend(split_handshake(fragment))
    return out


def client_hello_in(data: bytes) -> ClientHello:
    """The (single) ClientHello in a client flight."""
    (body,) = [
        b for t, b in handshake_messages(data) if t == HandshakeType.CLIENT_HELLO
    ]
    return ClientHello.parse(body)


def server_hello_in(data: bytes) -> ServerHello:
    """The ServerHello (or HRR) at the start of a server flight."""
    msg_type, body = handshake_messages(data)[0]
    assert msg_type == HandshakeType.SERVER_HELLO
    return ServerHello.parse(body)


def replace_client_hello(
    data: bytes, edit: Callable[[ClientHello], ClientHello]
) -> bytes:
    """``data`` with its ClientHello record rewritten (CCS records kept)."""
    records = parse_records(data)
    out: list[tuple[int, bytes]] = []
    for content_type, fragment in records:
        if content_type == ContentType.HANDSHAKE:
            ((msg_type, body),) = split_handshake(fragment)
            assert msg_type == HandshakeType.CLIENT_HELLO
            fragment = frame(msg_type, edit(ClientHello.parse(body)).encode())
        out.append((content_type, fragment))
    return join_records(out)


def replace_server_hello(
    data: bytes, edit: Callable[[ServerHello], ServerHello]
) -> bytes:
    """``data`` with its first (plaintext) ServerHello/HRR record rewritten."""
    records = parse_records(data)
    content_type, fragment = records[0]
    assert content_type == ContentType.HANDSHAKE
    ((msg_type, body),) = split_handshake(fragment)
    records[0] = (content_type, frame(msg_type, edit(ServerHello.parse(body)).encode()))
    return join_records(records)


def ech_offer(hello: ClientHello) -> ECHClientHelloOuter:
    """The outer-form encrypted_client_hello of ``hello``."""
    data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
    assert data is not None
    offer = parse_client_hello_extension(data)
    assert offer is not None
    return offer


def open_outer(key: ECHKey, outer: ClientHello) -> tuple[ClientHello, ECHAccepted]:
    """ClientHelloInner and the HPKE state, decrypted with the test's own key."""
    opened = open_client_hello(outer, ech_offer(outer), index_keys([key]))
    assert opened is not None
    return opened


def decrypt_encoded_inner(key: ECHKey, outer: ClientHello) -> bytes:
    """The raw EncodedClientHelloInner, via HPKE only (no reconstruction)."""
    offer = ech_offer(outer)
    contents = key.config.contents
    assert contents is not None
    context = hpke.setup_base_recipient(
        contents.kem_id,
        offer.cipher_suite.kdf_id,
        offer.cipher_suite.aead_id,
        offer.enc,
        key.private_key,
        b"tls ech\x00" + key.config.raw,
    )
    return context.open(client_hello_outer_aad(outer, offer), offer.payload)


@dataclass
class Captured:
    """A real client's first flight: the client, its CHO and its CHI."""

    key: ECHKey
    client: ech.ClientConnection
    outer: ClientHello
    inner: ClientHello


def capture(
    key: ECHKey,
    cc: ech.ClientConfig | None = None,
    server_name: str | None = INNER_NAME,
    session: ech.SessionTicket | None = None,
) -> Captured:
    """Start a client offering ECH with ``key`` and decrypt its ClientHello.

    Only HPKE and reconstruction run, none of the server's checks on the
    result, so hooks may make the inner hello deliberately invalid.
    """
    client = ech.ClientConnection(
        cc or client_config(),
        server_name,
        session=session,
        ech_configs=config_list(key),
    )
    client.start()
    outer = client_hello_in(client.data_to_send())
    inner = decode_client_hello_inner(decrypt_encoded_inner(key, outer), outer)
    return Captured(key, client, outer, inner)


def compressed_types(inner: ClientHello) -> list[int]:
    """What our client compresses out of ``inner`` (contiguous, in order)."""
    return [e.type for e in inner.extensions if e.type in COMPRESSED_EXTENSIONS]


def encoded_from(inner: ClientHello, padding: int = 0) -> bytes:
    """EncodedClientHelloInner for ``inner`` as our client compresses it."""
    return encode_client_hello_inner(compress(inner, compressed_types(inner)), padding)


def seal_outer(
    outer: ClientHello,
    encoded: bytes,
    key: ECHKey,
    *,
    suite: HpkeSymmetricCipherSuite = MTI,
    config_id: int | None = None,
    info_config: bytes | None = None,
) -> tuple[ClientHello, hpke.SenderContext]:
    """``outer`` carrying ``encoded`` sealed to ``key`` (RFC 9849 §6.1.1).

    The ECH extension (any existing one is replaced in place, else added
    before pre_shared_key) gets a zero payload of the final length, the
    hello is serialized as AAD, and the payload is sealed into place.
    """
    contents = key.config.contents
    assert contents is not None
    info = b"tls ech\x00" + (info_config if info_config is not None else key.config.raw)
    enc, context = hpke.setup_base_sender(
        contents.kem_id, suite.kdf_id, suite.aead_id, contents.public_key, info
    )
    placeholder = ECHClientHelloOuter(
        suite,
        contents.config_id if config_id is None else config_id,
        enc,
        bytes(len(encoded) + hpke.tag_length(suite.aead_id)),
    )
    extension = Extension(E.ENCRYPTED_CLIENT_HELLO, placeholder.encode())
    if outer.has_extension(E.ENCRYPTED_CLIENT_HELLO):
        outer = outer.with_extension(extension)
    else:
        outer = with_extension_before_psk(outer, extension)
    payload = context.seal(client_hello_outer_aad(outer, placeholder), encoded)
    sealed = placeholder.with_payload(payload)
    return outer.with_extension(
        Extension(E.ENCRYPTED_CLIENT_HELLO, sealed.encode())
    ), context


def with_extensions(hello: ClientHello, extensions: Sequence[Extension]) -> ClientHello:
    """``hello`` with its extension list replaced."""
    return dataclasses.replace(hello, extensions=tuple(extensions))


# confirmations from first principles (RFC 9849 §7.2, §7.2.1) --------------------------


def hash_of(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    """Hash ``data`` with ``algorithm``."""
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def message_hash(algorithm: hashes.HashAlgorithm, client_hello: ClientHello) -> bytes:
    """RFC 8446 §4.4.1 synthetic ``message_hash`` message replacing CH1."""
    digest = hash_of(
        algorithm, frame(HandshakeType.CLIENT_HELLO, client_hello.encode())
    )
    return bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(digest))) + digest


def expected_confirmation(
    algorithm: hashes.HashAlgorithm,
    inner_random: bytes,
    label: bytes,
    transcript: bytes,
) -> bytes:
    """HKDF-Expand-Label(HKDF-Extract(0, random), label, Hash(transcript), 8)."""
    prk = hkdf_extract(algorithm, bytes(algorithm.digest_size), inner_random)
    return hkdf_expand_label(algorithm, prk, label, hash_of(algorithm, transcript), 8)


def zero_tail(sh: ServerHello) -> ServerHello:
    """``sh`` with the last 8 bytes of ``random`` zeroed."""
    return sh.with_random(sh.random[:24] + bytes(8))


def sh_frame(sh: ServerHello) -> bytes:
    """A ServerHello with its handshake header."""
    return frame(HandshakeType.SERVER_HELLO, sh.encode())


def ch_frame(ch: ClientHello) -> bytes:
    """A ClientHello with its handshake header."""
    return frame(HandshakeType.CLIENT_HELLO, ch.encode())


def session_ticket(
    sc: ech.ServerConfig, configs: ECHConfigList | None = None
) -> ech.SessionTicket:
    """A ticket for :data:`INNER_NAME` from a completed handshake with ``sc``."""
    pair = ech_pair(client_config(), sc, configs)
    pair.pump()
    assert pair.client.handshake_complete
    return pair.client.session_tickets[0]
