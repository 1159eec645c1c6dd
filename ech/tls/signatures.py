"""Signature schemes (RFC 8446 §4.2.3, §4.4.3), composed from ``cryptography``.

Two lists, as RFC 8446 §4.2.3 distinguishes them:

* :data:`SUPPORTED_SIGNATURE_SCHEMES`, for CertificateVerify (the
  ``signature_algorithms`` extension): ECDSA on P-256, P-384 and P-521 with
  the matching hash, Ed25519, Ed448, RSASSA-PSS with an rsaEncryption key
  ("rsae") and with an RSASSA-PSS key ("pss").
* :data:`CERTIFICATE_SIGNATURE_SCHEMES`, for signatures inside certificates
  (``signature_algorithms_cert``): all of those plus RSASSA-PKCS1-v1_5, which
  "refer solely to signatures which appear in certificates ... and are not
  defined for use in signed TLS handshake messages" (§4.2.3). A
  CertificateVerify with a PKCS#1 scheme is ``illegal_parameter``.

The rsae/pss split follows the key's certificate: "If the public key is
carried in an X.509 certificate, it MUST use the rsaEncryption OID" for rsae
and "the RSASSA-PSS OID" for pss (§4.2.3). ``cryptography`` loads both kinds
of key as :class:`~cryptography.hazmat.primitives.asymmetric.rsa.RSAPrivateKey`,
so the certificate's ``public_key_algorithm_oid`` decides.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import PublicKeyAlgorithmOID, SignatureAlgorithmOID

from ech.tls.enums import SignatureScheme
from ech.tls.errors import BadCertificate, DecryptError, IllegalParameter

S = SignatureScheme

#: The schemes we sign and verify CertificateVerify with, in our preference.
SUPPORTED_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    S.ECDSA_SECP256R1_SHA256,
    S.ECDSA_SECP384R1_SHA384,
    S.ECDSA_SECP521R1_SHA512,
    S.ED25519,
    S.ED448,
    S.RSA_PSS_RSAE_SHA256,
    S.RSA_PSS_RSAE_SHA384,
    S.RSA_PSS_RSAE_SHA512,
    S.RSA_PSS_PSS_SHA256,
    S.RSA_PSS_PSS_SHA384,
    S.RSA_PSS_PSS_SHA512,
)

#: RSASSA-PKCS1-v1_5: for certificates only (RFC 8446 §4.2.3).
PKCS1_SCHEMES: tuple[SignatureScheme, ...] = (
    S.RSA_PKCS1_SHA256,
    S.RSA_PKCS1_SHA384,
    S.RSA_PKCS1_SHA512,
)

#: What we accept inside certificate chains (``signature_algorithms_cert``).
CERTIFICATE_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    *SUPPORTED_SIGNATURE_SCHEMES,
    *PKCS1_SCHEMES,
)

_RSAE: dict[int, type[hashes.HashAlgorithm]] = {
    S.RSA_PSS_RSAE_SHA256: hashes.SHA256,
    S.RSA_PSS_RSAE_SHA384: hashes.SHA384,
    S.RSA_PSS_RSAE_SHA512: hashes.SHA512,
}
_PSS: dict[int, type[hashes.HashAlgorithm]] = {
    S.RSA_PSS_PSS_SHA256: hashes.SHA256,
    S.RSA_PSS_PSS_SHA384: hashes.SHA384,
    S.RSA_PSS_PSS_SHA512: hashes.SHA512,
}
_ECDSA: dict[int, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    S.ECDSA_SECP256R1_SHA256: (ec.SECP256R1, hashes.SHA256),
    S.ECDSA_SECP384R1_SHA384: (ec.SECP384R1, hashes.SHA384),
    S.ECDSA_SECP521R1_SHA512: (ec.SECP521R1, hashes.SHA512),
}

#: The verifying side of :data:`_ECDSA`: the curve, and the signature
#: algorithm object, which holds no state and is made once, not per handshake.
_ECDSA_VERIFY: dict[int, tuple[type[ec.EllipticCurve], ec.ECDSA]] = {
    scheme: (curve, ec.ECDSA(hash_type()))
    for scheme, (curve, hash_type) in _ECDSA.items()
}

SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"


def signed_content(context: bytes, transcript_hash: bytes) -> bytes:
    """RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the hash."""
    return b" " * 64 + context + b"\x00" + transcript_hash


def has_pss_key(certificate: x509.Certificate | None) -> bool:
    """Whether the certificate's key carries the RSASSA-PSS OID (RFC 4055)."""
    if certificate is None:
        return False
    return certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS


def schemes_for_key(
    key: PrivateKeyTypes, certificate: x509.Certificate | None = None
) -> tuple[SignatureScheme, ...]:
    """The CertificateVerify schemes we can sign with ``key``, best first.

    ``certificate`` (the key's leaf) tells an RSASSA-PSS key from an
    rsaEncryption one (RFC 8446 §4.2.3).
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return tuple(
            SignatureScheme(s)
            for s, (curve, _) in _ECDSA.items()
            if isinstance(key.curve, curve)
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return (S.ED25519,)
    if isinstance(key, ed448.Ed448PrivateKey):
        return (S.ED448,)
    if isinstance(key, rsa.RSAPrivateKey):
        table = _PSS if has_pss_key(certificate) else _RSAE
        return tuple(SignatureScheme(s) for s in table)
    return ()


def _pss(algorithm: hashes.HashAlgorithm) -> padding.PSS:
    # RFC 8446 §4.2.3: "The length of the Salt MUST be equal to the length
    # of the output of the digest algorithm"; MGF1 with the same hash.
    return padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)


def max_signature_length(key: PrivateKeyTypes) -> int:
    """The longest signature ``key`` makes, for sizing padded flights.

    ECDSA signatures are DER and vary by a few bytes: two INTEGERs of up to
    the field size plus a leading zero, in a SEQUENCE.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        integer = 2 + (key.curve.key_size + 7) // 8 + 1
        content = 2 * integer
        return content + (2 if content < 128 else 3)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return 64
    if isinstance(key, ed448.Ed448PrivateKey):
        return 114
    if isinstance(key, rsa.RSAPrivateKey):
        return (key.key_size + 7) // 8
    raise ValueError(f"no signatures from {type(key).__name__}")


def sign(key: PrivateKeyTypes, scheme: int, content: bytes) -> bytes:
    """Sign ``content`` with ``scheme``.

    Raises:
        ValueError: ``scheme`` does not fit ``key`` (our configuration's fault).
    """
    if isinstance(key, rsa.RSAPrivateKey) and (scheme in _RSAE or scheme in _PSS):
        algorithm = (_RSAE.get(scheme) or _PSS[scheme])()
        return key.sign(content, _pss(algorithm), algorithm)
    if scheme in _ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(content, ec.ECDSA(_ECDSA[scheme][1]()))
    if scheme == S.ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(content)
    if scheme == S.ED448 and isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(content)
    raise ValueError(f"cannot sign {SignatureScheme(scheme)} with {type(key).__name__}")


def verify(
    certificate: x509.Certificate, scheme: int, signature: bytes, content: bytes
) -> None:
    """Verify a CertificateVerify signature made by ``certificate``'s key.

    Raises:
        IllegalParameter: ``scheme`` is not one for CertificateVerify (PKCS#1,
            SHA-1, unknown) or does not fit the key (RFC 8446 §4.2.3,
            §4.4.3).
        BadCertificate: the certificate's key does not parse.
        DecryptError: the signature does not verify (RFC 8446 §4.4.3).
    """
    if scheme not in SUPPORTED_SIGNATURE_SCHEMES:
        # "RSA signatures MUST use an RSASSA-PSS algorithm, regardless of
        # whether RSASSA-PKCS1-v1_5 algorithms appear in signature_algorithms."
        raise IllegalParameter(
            f"{SignatureScheme(scheme)} is not allowed in CertificateVerify"
        )
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise BadCertificate("certificate public key does not parse") from None
    try:
        if scheme in _ECDSA_VERIFY and isinstance(key, ec.EllipticCurvePublicKey):
            curve, ecdsa = _ECDSA_VERIFY[scheme]
            if not isinstance(key.curve, curve):
                raise IllegalParameter("ECDSA scheme does not match the key's curve")
            key.verify(signature, content, ecdsa)
        elif isinstance(key, rsa.RSAPublicKey) and (scheme in _RSAE or scheme in _PSS):
            if (scheme in _PSS) != has_pss_key(certificate):
                raise IllegalParameter(
                    f"{SignatureScheme(scheme)} does not fit the key's OID (§4.2.3)"
                )
            algorithm = (_RSAE.get(scheme) or _PSS[scheme])()
            key.verify(signature, content, _pss(algorithm), algorithm)
        elif (scheme == S.ED25519 and isinstance(key, ed25519.Ed25519PublicKey)) or (
            scheme == S.ED448 and isinstance(key, ed448.Ed448PublicKey)
        ):
            key.verify(signature, content)
        else:
            raise IllegalParameter(
                f"{SignatureScheme(scheme)} does not fit the certificate key"
            )
    except InvalidSignature:
        raise DecryptError("CertificateVerify signature does not verify") from None


_HASHED_CERTIFICATE_SCHEMES: dict[
    tuple[x509.ObjectIdentifier, str | None], tuple[int, ...]
] = {
    (SignatureAlgorithmOID.ECDSA_WITH_SHA256, "sha256"): (S.ECDSA_SECP256R1_SHA256,),
    (SignatureAlgorithmOID.ECDSA_WITH_SHA384, "sha384"): (S.ECDSA_SECP384R1_SHA384,),
    (SignatureAlgorithmOID.ECDSA_WITH_SHA512, "sha512"): (S.ECDSA_SECP521R1_SHA512,),
    (SignatureAlgorithmOID.RSA_WITH_SHA256, "sha256"): (S.RSA_PKCS1_SHA256,),
    (SignatureAlgorithmOID.RSA_WITH_SHA384, "sha384"): (S.RSA_PKCS1_SHA384,),
    (SignatureAlgorithmOID.RSA_WITH_SHA512, "sha512"): (S.RSA_PKCS1_SHA512,),
    (SignatureAlgorithmOID.RSASSA_PSS, "sha256"): (
        S.RSA_PSS_RSAE_SHA256,
        S.RSA_PSS_PSS_SHA256,
    ),
    (SignatureAlgorithmOID.RSASSA_PSS, "sha384"): (
        S.RSA_PSS_RSAE_SHA384,
        S.RSA_PSS_PSS_SHA384,
    ),
    (SignatureAlgorithmOID.RSASSA_PSS, "sha512"): (
        S.RSA_PSS_RSAE_SHA512,
        S.RSA_PSS_PSS_SHA512,
    ),
    (SignatureAlgorithmOID.ED25519, None): (S.ED25519,),
    (SignatureAlgorithmOID.ED448, None): (S.ED448,),
}


def certificate_signature_schemes(certificate: x509.Certificate) -> tuple[int, ...]:
    """The schemes that name how ``certificate`` was signed (RFC 8446 §4.2.3).

    Empty for a signature no TLS 1.3 scheme names (SHA-1, DSA, ...). An
    ECDSA signature is named by its hash, the usual curve pairing.
    """
    try:
        hash_algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return ()
    name = hash_algorithm.name if hash_algorithm is not None else None
    key = (certificate.signature_algorithm_oid, name)
    return _HASHED_CERTIFICATE_SCHEMES.get(key, ())
