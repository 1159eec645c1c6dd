"""Signature schemes for CertificateVerify (RFC 8446 §4.2.3, §4.4.3)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    PrivateKeyTypes,
)

from ech.tls.enums import SignatureScheme
from ech.tls.errors import DecryptError, IllegalParameter

S = SignatureScheme

#: The schemes we sign and verify with, in our order of preference.
SUPPORTED_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    S.ECDSA_SECP256R1_SHA256,
    S.ECDSA_SECP384R1_SHA384,
    S.ED25519,
    S.RSA_PSS_RSAE_SHA256,
    S.RSA_PSS_RSAE_SHA384,
    S.RSA_PSS_RSAE_SHA512,
)

_PSS_HASH: dict[int, type[hashes.HashAlgorithm]] = {
    S.RSA_PSS_RSAE_SHA256: hashes.SHA256,
    S.RSA_PSS_RSAE_SHA384: hashes.SHA384,
    S.RSA_PSS_RSAE_SHA512: hashes.SHA512,
}
_ECDSA: dict[int, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    S.ECDSA_SECP256R1_SHA256: (ec.SECP256R1, hashes.SHA256),
    S.ECDSA_SECP384R1_SHA384: (ec.SECP384R1, hashes.SHA384),
}

SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"


def signed_content(context: bytes, transcript_hash: bytes) -> bytes:
    """RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the hash."""
    return b" " * 64 + context + b"\x00" + transcript_hash


def schemes_for_key(key: PrivateKeyTypes) -> tuple[SignatureScheme, ...]:
    """The schemes we can sign with ``key``, best first."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return tuple(
            SignatureScheme(s)
            for s, (curve, _) in _ECDSA.items()
            if isinstance(key.curve, curve)
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return (S.ED25519,)
    if isinstance(key, rsa.RSAPrivateKey):
        return (S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384, S.RSA_PSS_RSAE_SHA512)
    return ()


def sign(key: PrivateKeyTypes, scheme: int, content: bytes) -> bytes:
    """Sign ``content`` with ``scheme``."""
    if scheme in _PSS_HASH and isinstance(key, rsa.RSAPrivateKey):
        algorithm = _PSS_HASH[scheme]()
        return key.sign(
            content,
            padding.PSS(padding.MGF1(algorithm), algorithm.digest_size),
            algorithm,
        )
    if scheme in _ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(content, ec.ECDSA(_ECDSA[scheme][1]()))
    if scheme == S.ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(content)
    raise ValueError(f"cannot sign {SignatureScheme(scheme)} with {type(key).__name__}")


def verify(
    key: CertificateIssuerPublicKeyTypes, scheme: int, signature: bytes, content: bytes
) -> None:
    """Verify a CertificateVerify signature.

    Raises:
        IllegalParameter: ``scheme`` does not fit the key or was not offered.
        DecryptError: the signature does not verify (RFC 8446 §4.4.3).
    """
    try:
        if scheme in _PSS_HASH and isinstance(key, rsa.RSAPublicKey):
            algorithm = _PSS_HASH[scheme]()
            key.verify(
                signature,
                content,
                padding.PSS(padding.MGF1(algorithm), algorithm.digest_size),
                algorithm,
            )
        elif scheme in _ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
            curve, algorithm_type = _ECDSA[scheme]
            if not isinstance(key.curve, curve):
                raise IllegalParameter("ECDSA scheme does not match the key's curve")
            key.verify(signature, content, ec.ECDSA(algorithm_type()))
        elif scheme == S.ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, content)
        else:
            raise IllegalParameter(
                f"{SignatureScheme(scheme)} does not fit the certificate key"
            )
    except InvalidSignature:
        raise DecryptError("CertificateVerify signature does not verify") from None
