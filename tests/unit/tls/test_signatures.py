"""Signature schemes (RFC 8446 §4.2.3, §4.4.2.2, §4.4.3).

CertificateVerify uses only ECDSA (with the key's own curve), EdDSA and
RSASSA-PSS (rsae for rsaEncryption keys, pss for RSASSA-PSS keys);
RSASSA-PKCS1-v1_5 is for signatures inside certificates only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

import ech
from ech.errors import DecryptError, IllegalParameter
from ech.events import HandshakeComplete
from ech.pki import KeyType, TestCA
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType, HandshakeType, SignatureScheme
from ech.tls.handshake import Epoch
from ech.tls.messages import CertificateVerify, ClientHello
from ech.tls.signatures import (
    CERTIFICATE_SIGNATURE_SCHEMES,
    PKCS1_SCHEMES,
    SUPPORTED_SIGNATURE_SCHEMES,
    certificate_signature_schemes,
    sign,
    verify,
)
from tests.helpers import (
    expect_encrypted_alert,
    handshake,
    make_pair,
    parse_records,
    rsa_pss_leaf,
    split_handshake,
)

S = SignatureScheme
E = ExtensionType


class _SchemeSpy:
    """A server signer that records the scheme it was asked for."""

    def __init__(self) -> None:
        self.schemes: list[int] = []

    def __call__(self, key: PrivateKeyTypes, scheme: int, content: bytes) -> bytes:
        self.schemes.append(scheme)
        return sign(key, scheme, content)


@pytest.fixture(scope="module")
def pss_leaf(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> ech.CertifiedKey:
    return rsa_pss_leaf(ca, "example.test", tmp_path_factory.mktemp("pss"))


@pytest.mark.parametrize(
    ("key_type", "scheme"),
    [
        ("p256", S.ECDSA_SECP256R1_SHA256),
        ("p384", S.ECDSA_SECP384R1_SHA384),
        ("p521", S.ECDSA_SECP521R1_SHA512),
        ("ed25519", S.ED25519),
        ("ed448", S.ED448),
        ("rsa2048", S.RSA_PSS_RSAE_SHA256),
    ],
)
def test_certificate_verify_scheme_per_key(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    key_type: KeyType,
    scheme: SignatureScheme,
) -> None:
    spy = _SchemeSpy()
    sc = dataclasses.replace(
        server_config,
        certificates=(ca.issue("example.test", key_type=key_type),),
        signer=spy,
    )
    _, _, client_events, _ = handshake(client_config, sc)
    assert any(isinstance(e, HandshakeComplete) for e in client_events)
    assert spy.schemes == [scheme]


def test_rsa_pss_key_signs_with_pss_schemes(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    pss_leaf: ech.CertifiedKey,
) -> None:
    """RFC 8446 §4.2.3: a key with the RSASSA-PSS OID uses rsa_pss_pss_*."""
    assert pss_leaf.signature_schemes == (
        S.RSA_PSS_PSS_SHA256,
        S.RSA_PSS_PSS_SHA384,
        S.RSA_PSS_PSS_SHA512,
    )
    spy = _SchemeSpy()
    sc = dataclasses.replace(server_config, certificates=(pss_leaf,), signer=spy)
    _, _, client_events, _ = handshake(client_config, sc)
    assert any(isinstance(e, HandshakeComplete) for e in client_events)
    assert spy.schemes == [S.RSA_PSS_PSS_SHA256]


def test_rsae_scheme_with_a_pss_key_is_illegal_parameter(
    pss_leaf: ech.CertifiedKey, ca: TestCA
) -> None:
    """rsae needs the rsaEncryption OID, pss the RSASSA-PSS OID (§4.2.3)."""
    content = b"signed content"
    key = pss_leaf.private_key
    rsae = sign(key, S.RSA_PSS_RSAE_SHA256, content)  # cryptographically the same
    with pytest.raises(IllegalParameter, match="OID"):
        verify(pss_leaf.chain[0], S.RSA_PSS_RSAE_SHA256, rsae, content)
    verify(pss_leaf.chain[0], S.RSA_PSS_PSS_SHA256, rsae, content)
    plain = ca.issue("example.test", key_type="rsa2048")
    signature = sign(plain.private_key, S.RSA_PSS_RSAE_SHA256, content)
    with pytest.raises(IllegalParameter, match="OID"):
        verify(plain.chain[0], S.RSA_PSS_PSS_SHA256, signature, content)
    verify(plain.chain[0], S.RSA_PSS_RSAE_SHA256, signature, content)


@pytest.mark.parametrize("scheme", [*PKCS1_SCHEMES, S.RSA_PKCS1_SHA1, S.ECDSA_SHA1])
def test_pkcs1_and_sha1_never_verify_a_certificate_verify(
    ca: TestCA, scheme: int
) -> None:
    """§4.2.3: PKCS#1 is "not defined for use in signed TLS handshake messages"."""
    leaf = ca.issue("example.test", key_type="rsa2048")
    key = leaf.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(b"content", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(IllegalParameter, match="not allowed in CertificateVerify"):
        verify(leaf.chain[0], scheme, signature, b"content")


def test_client_refuses_pkcs1_certificate_verify_even_when_offered(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    """A client listing PKCS#1 in signature_algorithms (allowed for TLS 1.2
    compatibility) still refuses it in CertificateVerify: illegal_parameter."""
    leaf = ca.issue("example.test", key_type="rsa2048")
    key = leaf.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    cc = dataclasses.replace(
        client_config,
        signature_algorithms=(S.RSA_PKCS1_SHA256, *client_config.signature_algorithms),
    )

    def pkcs1_signer(_key: PrivateKeyTypes, _scheme: int, content: bytes) -> bytes:
        return key.sign(content, padding.PKCS1v15(), hashes.SHA256())

    sc = dataclasses.replace(server_config, certificates=(leaf,), signer=pkcs1_signer)
    pair = make_pair(cc, sc)

    def hook(epoch: Epoch, message: bytes) -> bytes:
        ((msg_type, body),) = split_handshake(message)
        if msg_type == HandshakeType.CERTIFICATE_VERIFY:
            cv = CertificateVerify.parse(body)
            return CertificateVerify(S.RSA_PKCS1_SHA256, cv.signature).framed()
        return message

    pair.server.outgoing_message_hook = hook
    pair.to_server()
    expect_encrypted_alert(
        pair.client, pair.server.data_to_send(), IllegalParameter, pair.server
    )


def test_signature_algorithms_cert_lists_pkcs1_but_signature_algorithms_does_not(
    client_config: ech.ClientConfig,
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    ((_, fragment),) = parse_records(client.data_to_send())
    ((_, body),) = split_handshake(fragment)
    hello = ClientHello.parse(body)
    algorithms = hello.extension(E.SIGNATURE_ALGORITHMS)
    cert_algorithms = hello.extension(E.SIGNATURE_ALGORITHMS_CERT)
    assert algorithms is not None
    assert cert_algorithms is not None
    assert ext.decode_u16_list(algorithms) == SUPPORTED_SIGNATURE_SCHEMES
    assert ext.decode_u16_list(cert_algorithms) == CERTIFICATE_SIGNATURE_SCHEMES
    assert not set(PKCS1_SCHEMES) & set(ext.decode_u16_list(algorithms))


def test_server_prefers_a_chain_signed_as_the_client_accepts(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    """§4.4.2.2: a chain "signed only via the indicated supported algorithms"
    of signature_algorithms_cert wins; PKCS#1-signed chains lose when the
    client leaves PKCS#1 out."""
    rsa_ca = TestCA.create("rsa CA", key_type="rsa2048")
    pkcs1_signed = rsa_ca.issue("example.test", key_type="rsa2048")
    ecdsa_signed = ca.issue("example.test")
    assert pkcs1_signed.chain_signatures == ((S.RSA_PKCS1_SHA256,),)
    assert ecdsa_signed.chain_signatures == ((S.ECDSA_SECP256R1_SHA256,),)
    cc = dataclasses.replace(
        client_config, trust_store=(ca.certificate, rsa_ca.certificate)
    )
    for cert_schemes, expected in (
        (SUPPORTED_SIGNATURE_SCHEMES, S.ECDSA_SECP256R1_SHA256),  # no PKCS#1
        (CERTIFICATE_SIGNATURE_SCHEMES, S.RSA_PSS_RSAE_SHA256),  # the first fits
    ):
        spy = _SchemeSpy()
        sc = dataclasses.replace(
            server_config, certificates=(pkcs1_signed, ecdsa_signed), signer=spy
        )
        client, _, _, _ = handshake(
            dataclasses.replace(cc, signature_algorithms_cert=cert_schemes), sc
        )
        assert client.handshake_complete
        assert spy.schemes == [expected]


def test_server_falls_back_to_a_chain_of_its_choice(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§4.4.2.2: with no chain signed as asked, "the server SHOULD continue
    the handshake by sending the client a certificate chain of its choice"."""
    cc = dataclasses.replace(client_config, signature_algorithms_cert=(S.ED448,))
    client, _, _, _ = handshake(cc, server_config)
    assert client.handshake_complete


def test_unknown_signature_schemes_are_ignored(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """Unknown code points in either list are skipped, never decode_error."""
    cc = dataclasses.replace(
        client_config,
        signature_algorithms=(0x0A0A, 0xFE00, *client_config.signature_algorithms),
        signature_algorithms_cert=(0x1A1A, *CERTIFICATE_SIGNATURE_SCHEMES),
    )
    client, _, _, _ = handshake(cc, server_config)
    assert client.handshake_complete


def test_certificate_signature_schemes(ca: TestCA, tmp_path: Path) -> None:
    assert certificate_signature_schemes(ca.issue("a.test").chain[0]) == (
        S.ECDSA_SECP256R1_SHA256,
    )
    ed_ca = TestCA.create("ed CA", key_type="ed25519")
    assert certificate_signature_schemes(ed_ca.issue("a.test").chain[0]) == (S.ED25519,)
    ed448_ca = TestCA.create("ed448 CA", key_type="ed448")
    assert certificate_signature_schemes(ed448_ca.issue("a.test").chain[0]) == (
        S.ED448,
    )


@pytest.mark.parametrize(
    ("key_type", "scheme", "error"),
    [
        ("p256", S.ECDSA_SECP256R1_SHA256, None),
        ("p384", S.ECDSA_SECP384R1_SHA384, None),
        ("p256", S.ECDSA_SECP384R1_SHA384, IllegalParameter),  # not the key's curve
        ("ed25519", S.ECDSA_SECP256R1_SHA256, IllegalParameter),
        ("p256", S.ED25519, IllegalParameter),
        ("p256", S.RSA_PSS_RSAE_SHA256, IllegalParameter),
    ],
)
def test_verify_checks_the_scheme_against_the_key(
    ca: TestCA,
    key_type: KeyType,
    scheme: SignatureScheme,
    error: type[Exception] | None,
) -> None:
    certified = ca.issue("example.test", key_type=key_type)
    content = b"signed content"
    own = certified.signature_schemes[0]
    signature = sign(certified.private_key, own, content)
    leaf = certified.chain[0]
    if error is None:
        verify(leaf, scheme, signature, content)
        with pytest.raises(DecryptError):
            verify(leaf, scheme, signature, content + b"!")
        return
    with pytest.raises(error):
        verify(leaf, scheme, signature, content)
