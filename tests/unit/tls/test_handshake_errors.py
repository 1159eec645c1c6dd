"""Each side rejects protocol violations with the right alert (RFC 8446 §4, §6.2).

Every test asserts the exact :class:`~ech.errors.Alert` subclass raised by
``receive_data`` *and* that the matching alert record was queued: in
plaintext as ``15 03 03 00 02 02 <desc>``, or protected, in which case the
peer is fed the bytes and must report ``ConnectionClosed(<desc>)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

import ech
from ech.errors import (
    BadCertificate,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersion,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ech.pki import TestCA
from ech.tls import extensions as ext
from ech.tls.enums import (
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from ech.tls.extensions import Extension, KeyShareEntry, OfferedPsks, PskIdentity
from ech.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    ClientHello,
    EncryptedExtensions,
    KeyUpdate,
    ServerHello,
)
from ech.tls.signatures import sign
from tests.helpers import (
    Pair,
    build_record,
    edit_first_handshake_record,
    edit_messages,
    expect_encrypted_alert,
    expect_plain_alert,
    frame,
    handshake,
    join_records,
    make_pair,
    parse_records,
    rewrite_protected_messages,
)

E = ExtensionType
AES128 = CipherSuite.TLS_AES_128_GCM_SHA256
AES256 = CipherSuite.TLS_AES_256_GCM_SHA384
CHACHA = CipherSuite.TLS_CHACHA20_POLY1305_SHA256


def _with_server_hook(
    config: ech.ServerConfig, hook: Callable[[ServerHello], ServerHello]
) -> ech.ServerConfig:
    return dataclasses.replace(config, server_hello_hook=hook)


def _with_client_hook(
    config: ech.ClientConfig, hook: Callable[[ClientHello], ClientHello]
) -> ech.ClientConfig:
    return dataclasses.replace(config, client_hello_hook=hook)


def _server_flight(pair: Pair) -> bytes:
    """Deliver the ClientHello; return the server's answer undelivered."""
    pair.to_server()
    return pair.server.data_to_send()


def _client_flight_after_server(pair: Pair) -> bytes:
    """Run up to the client's Finished; return it undelivered."""
    pair.to_server()
    pair.to_client()
    return pair.client.data_to_send()


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 0x01,))


def _hrr_configs(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> tuple[ech.ClientConfig, ech.ServerConfig]:
    """Client shares X25519 only; server insists on P-256: one HRR."""
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1),
        key_share_groups=(NamedGroup.X25519,),
    )
    sc = dataclasses.replace(server_config, groups=(NamedGroup.SECP256R1,))
    return cc, sc


# client-side checks of ServerHello / HelloRetryRequest -------------------------------


def test_client_rejects_server_hello_suite_not_offered(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, cipher_suites=(AES128,))
    sc = _with_server_hook(
        server_config, lambda sh: dataclasses.replace(sh, cipher_suite=AES256)
    )
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_unknown_suite(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    # A GREASE-like suite the client lists (through the hook) but cannot run.
    cc = _with_client_hook(
        client_config,
        lambda ch: dataclasses.replace(ch, cipher_suites=(*ch.cipher_suites, 0x13FF)),
    )
    sc = _with_server_hook(
        server_config, lambda sh: dataclasses.replace(sh, cipher_suite=0x13FF)
    )
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_wrong_legacy_session_id_echo(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config,
        lambda sh: dataclasses.replace(sh, legacy_session_id_echo=b"\x00" * 32),
    )
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_server_hello_without_supported_versions(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config, lambda sh: sh.without_extension(E.SUPPORTED_VERSIONS)
    )
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), ProtocolVersion)


def test_client_rejects_server_hello_selecting_tls12(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config,
        lambda sh: sh.with_extension(
            Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(0x0303))
        ),
    )
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_nonzero_compression_method(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config, lambda sh: dataclasses.replace(sh, legacy_compression_method=1)
    )
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_unsolicited_server_hello_extension(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config, lambda sh: sh.with_extension(Extension(0x7777, b""))
    )
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), UnsupportedExtension)


def test_client_rejects_offered_extension_not_allowed_in_server_hello(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config, lambda sh: sh.with_extension(Extension(E.SERVER_NAME, b""))
    )
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_duplicate_server_hello_extension(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(sh: ServerHello) -> ServerHello:
        versions = Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(0x0304))
        return dataclasses.replace(sh, extensions=(*sh.extensions, versions))

    pair = make_pair(client_config, _with_server_hook(server_config, hook))
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_server_hello_without_key_share(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(server_config, lambda sh: sh.without_extension(E.KEY_SHARE))
    pair = make_pair(client_config, sc)
    expect_plain_alert(pair.client, _server_flight(pair), MissingExtension)


def test_client_rejects_key_share_for_group_not_sent(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(sh: ServerHello) -> ServerHello:
        share = KeyShareEntry(NamedGroup.SECP256R1, b"\x04" + bytes(64))
        return sh.with_extension(
            Extension(E.KEY_SHARE, ext.encode_server_key_share(share))
        )

    pair = make_pair(client_config, _with_server_hook(server_config, hook))
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_invalid_server_key_share(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(sh: ServerHello) -> ServerHello:
        share = KeyShareEntry(NamedGroup.X25519, bytes(31))
        return sh.with_extension(
            Extension(E.KEY_SHARE, ext.encode_server_key_share(share))
        )

    pair = make_pair(client_config, _with_server_hook(server_config, hook))
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_selected_psk_it_did_not_offer(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = _with_server_hook(
        server_config,
        lambda sh: sh.with_extension(Extension(E.PRE_SHARED_KEY, ext.encode_u16(0))),
    )
    pair = make_pair(client_config, sc)
    # pre_shared_key was not offered at all: unsolicited.
    expect_plain_alert(pair.client, _server_flight(pair), UnsupportedExtension)


def test_client_rejects_second_hello_retry_request(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)

    def hook(sh: ServerHello) -> ServerHello:
        if sh.is_hello_retry_request:
            return sh
        group = Extension(E.KEY_SHARE, ext.encode_u16(NamedGroup.SECP384R1))
        return sh.with_random(HELLO_RETRY_REQUEST_RANDOM).with_extension(group)

    pair = make_pair(cc, _with_server_hook(sc, hook))
    pair.to_server()  # ClientHello1
    pair.to_client()  # HelloRetryRequest
    pair.to_server()  # ClientHello2
    expect_plain_alert(pair.client, pair.server.data_to_send(), UnexpectedMessage)


def test_client_rejects_hrr_selecting_group_already_offered(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)
    sc = _with_server_hook(
        sc,
        lambda sh: sh.with_extension(
            Extension(E.KEY_SHARE, ext.encode_u16(NamedGroup.X25519))
        ),
    )
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_hrr_selecting_group_not_supported(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)
    sc = _with_server_hook(
        sc,
        lambda sh: sh.with_extension(
            Extension(E.KEY_SHARE, ext.encode_u16(NamedGroup.X448))
        ),
    )
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_hrr_that_changes_nothing(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)
    sc = _with_server_hook(
        sc, lambda sh: sh.without_extension(E.KEY_SHARE).without_extension(E.COOKIE)
    )
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.client, _server_flight(pair), IllegalParameter)


def test_client_rejects_server_hello_suite_differing_from_hrr(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)

    def hook(sh: ServerHello) -> ServerHello:
        if sh.is_hello_retry_request:
            return sh
        return dataclasses.replace(sh, cipher_suite=CHACHA)

    pair = make_pair(cc, _with_server_hook(sc, hook))
    pair.to_server()
    pair.to_client()
    pair.to_server()
    expect_plain_alert(pair.client, pair.server.data_to_send(), IllegalParameter)


def test_client_rejects_handshake_message_spanning_key_change(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config)
    records = parse_records(_server_flight(pair))
    content_type, server_hello = records[0]
    # A fragment of the next message rides in the ServerHello's record.
    records[0] = (content_type, server_hello + b"\x08\x00")
    # The client fails before it installs its handshake keys: plaintext alert.
    expect_plain_alert(pair.client, join_records(records), UnexpectedMessage)


# client-side checks of the encrypted flight ------------------------------------------


def test_client_rejects_unsolicited_encrypted_extension(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = dataclasses.replace(
        server_config,
        encrypted_extensions_hook=lambda ee: ee.with_extension(Extension(0x7777, b"")),
    )
    pair = make_pair(client_config, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), UnsupportedExtension, pair.server
    )


def test_client_rejects_forbidden_encrypted_extension(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = dataclasses.replace(
        server_config,
        encrypted_extensions_hook=lambda ee: ee.with_extension(
            Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(0x0304))
        ),
    )
    pair = make_pair(client_config, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), IllegalParameter, pair.server
    )


def test_client_rejects_alpn_it_did_not_offer(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, alpn_protocols=("h2",))

    def hook(ee: EncryptedExtensions) -> EncryptedExtensions:
        alpn = Extension(
            E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.encode_alpn([b"spdy/3"])
        )
        return ee.with_extension(alpn)

    sc = dataclasses.replace(server_config, encrypted_extensions_hook=hook)
    pair = make_pair(cc, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), IllegalParameter, pair.server
    )


def test_client_rejects_alpn_when_it_offered_none(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(ee: EncryptedExtensions) -> EncryptedExtensions:
        alpn = Extension(
            E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.encode_alpn([b"h2"])
        )
        return ee.with_extension(alpn)

    sc = dataclasses.replace(server_config, encrypted_extensions_hook=hook)
    pair = make_pair(client_config, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), UnsupportedExtension, pair.server
    )


def test_client_rejects_two_alpn_protocols(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, alpn_protocols=("h2", "http/1.1"))

    def hook(ee: EncryptedExtensions) -> EncryptedExtensions:
        alpn = ext.encode_alpn([b"h2", b"http/1.1"])
        return ee.with_extension(
            Extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, alpn)
        )

    sc = dataclasses.replace(server_config, encrypted_extensions_hook=hook)
    pair = make_pair(cc, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), IllegalParameter, pair.server
    )


class _BadFinishedServer(ech.ServerConnection):
    def __init__(self, config: ech.ServerConfig) -> None:
        super().__init__(config)
        edit_messages(self, HandshakeType.FINISHED, _flip_last)


class _ShortFinishedServer(ech.ServerConnection):
    def __init__(self, config: ech.ServerConfig) -> None:
        super().__init__(config)
        edit_messages(self, HandshakeType.FINISHED, lambda data: data[:-1])


class _BadFinishedClient(ech.ClientConnection):
    def __init__(self, config: ech.ClientConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        edit_messages(self, HandshakeType.FINISHED, _flip_last)


class _ShortFinishedClient(ech.ClientConnection):
    def __init__(self, config: ech.ClientConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        edit_messages(self, HandshakeType.FINISHED, lambda data: data + b"\x00")


def test_client_rejects_bad_server_finished(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config, server_cls=_BadFinishedServer)
    expect_encrypted_alert(pair.client, _server_flight(pair), DecryptError, pair.server)


def test_client_rejects_server_finished_of_wrong_length(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config, server_cls=_ShortFinishedServer)
    expect_encrypted_alert(pair.client, _server_flight(pair), DecodeError, pair.server)


def test_client_rejects_bad_certificate_verify_signature(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def bad_signer(key: PrivateKeyTypes, scheme: int, content: bytes) -> bytes:
        return sign(key, scheme, content + b"tampered")

    sc = dataclasses.replace(server_config, signer=bad_signer)
    pair = make_pair(client_config, sc)
    expect_encrypted_alert(pair.client, _server_flight(pair), DecryptError, pair.server)


def test_client_rejects_certificate_verify_scheme_not_offered(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ed25519_leaf: ech.CertifiedKey,
) -> None:
    # The hello advertises Ed25519, but the client's policy accepts only ECDSA.
    ecdsa = ech.SignatureScheme.ECDSA_SECP256R1_SHA256
    cc = _with_client_hook(
        dataclasses.replace(client_config, signature_algorithms=(ecdsa,)),
        lambda ch: ch.with_extension(
            Extension(
                E.SIGNATURE_ALGORITHMS,
                ext.encode_u16_vector([ecdsa, ech.SignatureScheme.ED25519]),
            )
        ),
    )
    sc = dataclasses.replace(server_config, certificates=(ed25519_leaf,))
    pair = make_pair(cc, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), IllegalParameter, pair.server
    )


def test_server_without_fitting_certificate_is_handshake_failure(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ed25519_leaf: ech.CertifiedKey,
) -> None:
    cc = dataclasses.replace(
        client_config,
        signature_algorithms=(ech.SignatureScheme.ECDSA_SECP256R1_SHA256,),
    )
    sc = dataclasses.replace(server_config, certificates=(ed25519_leaf,))
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.server, pair.client.data_to_send(), HandshakeFailure)


def test_client_rejects_certificate_for_another_name(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    sc = dataclasses.replace(server_config, certificates=(ca.issue("other.test"),))
    pair = make_pair(client_config, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), BadCertificate, pair.server
    )


def test_client_rejects_certificate_from_untrusted_ca(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, other_ca: TestCA
) -> None:
    sc = dataclasses.replace(
        server_config, certificates=(other_ca.issue("example.test"),)
    )
    pair = make_pair(client_config, sc)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), BadCertificate, pair.server
    )


def _rewrite_server_certificate(pair: Pair, leaf: ech.CertifiedKey, der: bytes) -> None:
    """Serve ``der`` in place of the leaf (same length), edited in flight."""
    original = leaf.chain_der[0]
    assert len(der) == len(original)
    rewrite_protected_messages(pair.server, lambda _i, m: m.replace(original, der))


def test_client_rejects_certificate_with_invalid_x509_version(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    leaf: ech.CertifiedKey,
) -> None:
    # cryptography raises x509.InvalidVersion (not a ValueError) for v4.
    der = leaf.chain_der[0].replace(
        bytes.fromhex("a003020102"), bytes.fromhex("a003020103"), 1
    )
    pair = make_pair(client_config, server_config)
    _rewrite_server_certificate(pair, leaf, der)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), BadCertificate, pair.server
    )


@pytest.mark.parametrize("verify", [True, False])
def test_client_rejects_certificate_with_invalid_public_key(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    leaf: ech.CertifiedKey,
    verify: bool,
) -> None:
    point = (
        leaf.chain[0]
        .public_key()
        .public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    der = leaf.chain_der[0].replace(point, b"\x04" + bytes(len(point) - 1))
    cc = dataclasses.replace(client_config, verify_certificates=verify)
    pair = make_pair(cc, server_config)
    _rewrite_server_certificate(pair, leaf, der)
    expect_encrypted_alert(
        pair.client, _server_flight(pair), BadCertificate, pair.server
    )


def test_client_rejects_unparsable_certificate(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    leaf: ech.CertifiedKey,
) -> None:
    der = leaf.chain_der[0]
    pair = make_pair(client_config, server_config)
    _rewrite_server_certificate(pair, leaf, b"\x00" * len(der))
    expect_encrypted_alert(
        pair.client, _server_flight(pair), BadCertificate, pair.server
    )


def test_client_rejects_application_data_before_handshake(
    client_config: ech.ClientConfig,
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    client.data_to_send()
    expect_plain_alert(
        client, build_record(ContentType.APPLICATION_DATA, b"early"), UnexpectedMessage
    )


def test_client_rejects_handshake_message_out_of_order(
    client_config: ech.ClientConfig,
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    client.data_to_send()
    message = frame(20, bytes(32))  # Finished instead of ServerHello
    expect_plain_alert(
        client, build_record(ContentType.HANDSHAKE, message), UnexpectedMessage
    )


def test_client_rejects_malformed_server_hello(client_config: ech.ClientConfig) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    client.data_to_send()
    expect_plain_alert(
        client, build_record(ContentType.HANDSHAKE, frame(2, b"\x03\x03")), DecodeError
    )


def test_client_rejects_protected_change_cipher_spec(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    # RFC 8446 §5: "An implementation which receives ... a protected
    # change_cipher_spec record MUST abort the handshake with an
    # "unexpected_message" alert."
    pair = make_pair(client_config, server_config)

    def ccs_first(index: int, message: bytes) -> bytes:
        # In place of EncryptedExtensions, under the same (handshake) keys.
        if index == 0:
            pair.server.inject_record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
        return message

    rewrite_protected_messages(pair.server, ccs_first)
    pair.to_server()
    records = parse_records(pair.server.data_to_send())
    assert [t for t, _ in records[:3]] == [
        ContentType.HANDSHAKE,
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.APPLICATION_DATA,
    ]
    pair.client.receive_data(join_records(records[:2]))  # ServerHello and CCS
    expect_encrypted_alert(
        pair.client, join_records(records[2:]), UnexpectedMessage, pair.server
    )


def test_client_rejects_change_cipher_spec_after_handshake(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    ccs = build_record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    expect_encrypted_alert(client, ccs, UnexpectedMessage, server)


def test_client_rejects_key_update_not_at_record_boundary(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    # RFC 8446 §5.1: a KeyUpdate must end its record (a key change follows).
    client, server, _, _ = handshake(client_config, server_config)
    server.inject_record(ContentType.HANDSHAKE, KeyUpdate(0).framed())
    server.inject_record(ContentType.HANDSHAKE, KeyUpdate(0).framed())
    data = server.data_to_send()
    assert len(parse_records(data)) == 1
    expect_encrypted_alert(client, data, UnexpectedMessage, server)


def test_client_rejects_key_update_with_bad_request_value(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    server.inject_record(ContentType.HANDSHAKE, frame(24, b"\x02"))
    # RFC 8446 §4.6.3 asks for illegal_parameter; DecodeError is accepted too.
    with pytest.raises((IllegalParameter, DecodeError)):
        client.receive_data(server.data_to_send())


def test_client_rejects_malformed_change_cipher_spec(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config)
    records = parse_records(_server_flight(pair))
    assert records[1] == (ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    records[1] = (ContentType.CHANGE_CIPHER_SPEC, b"\x02")
    with pytest.raises(UnexpectedMessage):
        pair.client.receive_data(join_records(records))


# server-side checks of ClientHello ---------------------------------------------------


def test_server_rejects_client_hello_without_tls13(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(
        client_config,
        lambda ch: ch.with_extension(
            Extension(
                E.SUPPORTED_VERSIONS, ext.encode_client_versions([0x0303, 0x0302])
            )
        ),
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), ProtocolVersion)


def test_server_rejects_client_hello_without_supported_versions(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(
        client_config, lambda ch: ch.without_extension(E.SUPPORTED_VERSIONS)
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), ProtocolVersion)


def test_server_rejects_duplicate_extensions(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(ch: ClientHello) -> ClientHello:
        groups = ch.extension(E.SUPPORTED_GROUPS)
        assert groups is not None
        return dataclasses.replace(
            ch, extensions=(*ch.extensions, Extension(E.SUPPORTED_GROUPS, groups))
        )

    pair = make_pair(_with_client_hook(client_config, hook), server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_pre_shared_key_not_last(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    psk = OfferedPsks((PskIdentity(b"ticket", 0),), (bytes(32),))

    def hook(ch: ClientHello) -> ClientHello:
        return dataclasses.replace(
            ch,
            extensions=(
                *ch.extensions,
                Extension(E.PRE_SHARED_KEY, psk.encode()),
                Extension(E.PADDING, bytes(4)),
            ),
        )

    pair = make_pair(_with_client_hook(client_config, hook), server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_non_null_compression(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(
        client_config,
        lambda ch: dataclasses.replace(ch, legacy_compression_methods=b"\x01\x00"),
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_no_common_cipher_suite(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, cipher_suites=(AES128,))
    sc = dataclasses.replace(server_config, cipher_suites=(CHACHA,))
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.server, pair.client.data_to_send(), HandshakeFailure)


def test_server_rejects_no_common_group(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.SECP384R1,),
        key_share_groups=(NamedGroup.SECP384R1,),
    )
    sc = dataclasses.replace(server_config, groups=(NamedGroup.X25519,))
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.server, pair.client.data_to_send(), HandshakeFailure)


def test_server_rejects_key_share_not_in_supported_groups(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(
        client_config,
        lambda ch: ch.with_extension(
            Extension(E.SUPPORTED_GROUPS, ext.encode_u16_vector([NamedGroup.SECP256R1]))
        ),
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_repeated_key_share_group(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(ch: ClientHello) -> ClientHello:
        data = ch.extension(E.KEY_SHARE)
        assert data is not None
        share, *rest = ext.decode_client_key_shares(data)
        doubled = ext.encode_client_key_shares([share, *rest, share])
        return ch.with_extension(Extension(E.KEY_SHARE, doubled))

    pair = make_pair(_with_client_hook(client_config, hook), server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_invalid_key_share(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    def hook(ch: ClientHello) -> ClientHello:
        bad = ext.encode_client_key_shares(
            [KeyShareEntry(NamedGroup.X25519, bytes(32))]
        )
        return ch.with_extension(Extension(E.KEY_SHARE, bad))

    pair = make_pair(_with_client_hook(client_config, hook), server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_client_hello_without_key_share(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(client_config, lambda ch: ch.without_extension(E.KEY_SHARE))
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), MissingExtension)


def test_server_rejects_client_hello_without_signature_algorithms(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(
        client_config, lambda ch: ch.without_extension(E.SIGNATURE_ALGORITHMS)
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), MissingExtension)


def test_server_rejects_malformed_server_name(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = _with_client_hook(
        client_config,
        lambda ch: ch.with_extension(Extension(E.SERVER_NAME, b"\x00\x00")),
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), DecodeError)


def test_server_rejects_wrong_alpn(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, alpn_protocols=("h2",))
    sc = dataclasses.replace(server_config, alpn_protocols=("http/1.1",))
    pair = make_pair(cc, sc)
    expect_plain_alert(pair.server, pair.client.data_to_send(), NoApplicationProtocol)


def test_server_rejects_application_data_before_handshake(
    server_config: ech.ServerConfig,
) -> None:
    server = ech.ServerConnection(server_config)
    expect_plain_alert(
        server, build_record(ContentType.APPLICATION_DATA, b"early"), UnexpectedMessage
    )


def test_server_rejects_message_other_than_client_hello(
    server_config: ech.ServerConfig,
) -> None:
    server = ech.ServerConnection(server_config)
    record = build_record(ContentType.HANDSHAKE, frame(20, bytes(32)))
    expect_plain_alert(server, record, UnexpectedMessage)


def test_server_rejects_handshake_message_spanning_key_change(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config)
    records = parse_records(pair.client.data_to_send())
    records[0] = (records[0][0], records[0][1] + b"\x14\x00")
    expect_encrypted_alert(
        pair.server, join_records(records), UnexpectedMessage, pair.client
    )


# server-side checks of the second ClientHello ----------------------------------------


def _retry_pair(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    edit_second: Callable[[ClientHello], ClientHello],
) -> Pair:
    cc, sc = _hrr_configs(client_config, server_config)
    calls: list[ClientHello] = []

    def hook(ch: ClientHello) -> ClientHello:
        calls.append(ch)
        return ch if len(calls) == 1 else edit_second(ch)

    pair = make_pair(_with_client_hook(cc, hook), sc)
    pair.to_server()  # ClientHello1
    pair.to_client()  # HelloRetryRequest
    return pair


def test_server_rejects_second_client_hello_without_cookie(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = _retry_pair(
        client_config, server_config, lambda ch: ch.without_extension(E.COOKIE)
    )
    expect_plain_alert(pair.server, pair.client.data_to_send(), MissingExtension)


def test_server_rejects_second_client_hello_with_wrong_cookie(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = _retry_pair(
        client_config,
        server_config,
        lambda ch: ch.with_extension(Extension(E.COOKIE, ext.encode_cookie(bytes(32)))),
    )
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_second_client_hello_with_wrong_share(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    share = KeyShareEntry(NamedGroup.X25519, bytes(range(32)))
    pair = _retry_pair(
        client_config,
        server_config,
        lambda ch: ch.with_extension(
            Extension(E.KEY_SHARE, ext.encode_client_key_shares([share]))
        ),
    )
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_unasked_cookie(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)
    calls: list[ClientHello] = []

    def hook(ch: ClientHello) -> ClientHello:
        calls.append(ch)
        if len(calls) == 1:
            return ch
        return ch.with_extension(Extension(E.COOKIE, ext.encode_cookie(b"unasked")))

    sc = dataclasses.replace(sc, hello_retry_cookie=False)
    pair = make_pair(_with_client_hook(cc, hook), sc)
    pair.to_server()
    pair.to_client()
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_second_client_hello_without_hrr_suite(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = _retry_pair(
        client_config,
        server_config,
        lambda ch: dataclasses.replace(ch, cipher_suites=(CHACHA,)),
    )
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_server_rejects_early_data_after_hrr(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = _retry_pair(
        client_config,
        server_config,
        lambda ch: ch.with_extension(Extension(E.EARLY_DATA, b"")),
    )
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


# server-side checks of the client's second flight and PSKs ---------------------------


def test_server_rejects_bad_client_finished(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config, client_cls=_BadFinishedClient)
    data = _client_flight_after_server(pair)
    expect_encrypted_alert(pair.server, data, DecryptError, pair.client)


def test_server_rejects_client_finished_of_wrong_length(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config, client_cls=_ShortFinishedClient)
    data = _client_flight_after_server(pair)
    expect_encrypted_alert(pair.server, data, DecodeError, pair.client)


def _ticket(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> ech.SessionTicket:
    client, _, _, _ = handshake(client_config, server_config)
    (ticket,) = client.session_tickets
    return ticket


def test_server_rejects_tampered_psk_binder(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, server_config)
    pair = make_pair(client_config, server_config, session=ticket)
    hello = pair.client.data_to_send()
    # The binder is the last thing in the ClientHello.
    expect_plain_alert(pair.server, _flip_last(hello), DecryptError)


def test_server_rejects_psk_without_psk_modes(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, server_config)
    cc = _with_client_hook(
        client_config, lambda ch: ch.without_extension(E.PSK_KEY_EXCHANGE_MODES)
    )
    pair = make_pair(cc, server_config, session=ticket)
    expect_plain_alert(pair.server, pair.client.data_to_send(), MissingExtension)


def test_server_rejects_psk_binder_count_mismatch(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, server_config)
    pair = make_pair(client_config, server_config, session=ticket)

    def edit(_msg_type: int, body: bytes) -> bytes:
        hello = ClientHello.parse(body)
        data = hello.extension(E.PRE_SHARED_KEY)
        assert data is not None
        offered = OfferedPsks.parse(data)
        two = OfferedPsks(offered.identities, offered.binders * 2)
        return hello.with_extension(Extension(E.PRE_SHARED_KEY, two.encode())).encode()

    data = edit_first_handshake_record(pair.client.data_to_send(), edit)
    expect_plain_alert(pair.server, data, IllegalParameter)


def test_server_rejects_client_hello_after_handshake(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    # Smuggle a handshake message through the client's record protection.
    smuggled = ClientHello(bytes(32), b"", (AES128,), (Extension(0, bytes(4)),))
    client.inject_record(ContentType.HANDSHAKE, smuggled.framed())
    expect_encrypted_alert(server, client.data_to_send(), UnexpectedMessage, client)


def test_server_rejects_plaintext_client_hello_after_keys(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config)
    hello = pair.client.data_to_send()
    pair.server.receive_data(hello)
    expect_encrypted_alert(pair.server, hello, UnexpectedMessage, pair.client)
