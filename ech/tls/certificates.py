"""Certificates: the server's chains and keys, and the client's path validation.

Validation is ``cryptography.x509.verification`` (RFC 5280 paths, RFC 6125
DNS-ID matching); we only choose the trust store and map failures to alerts.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import ssl
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ech.tls.enums import SignatureScheme
from ech.tls.errors import (
    Alert,
    BadCertificate,
    CertificateExpired,
    DecodeError,
    UnknownCA,
    UnsupportedCertificate,
)
from ech.tls.extensions import may_be_ip_address
from ech.tls.messages import Certificate, CertificateEntry
from ech.tls.signatures import certificate_signature_schemes, schemes_for_key
from ech.tls.wire import frame_handshake


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate chain (leaf first) and the leaf's private key."""

    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKeyTypes = field(repr=False)

    @classmethod
    def load(cls, cert_path: str | Path, key_path: str | Path) -> CertifiedKey:
        """Read a PEM chain and a PEM private key (PKCS#8 or traditional)."""
        chain = tuple(x509.load_pem_x509_certificates(Path(cert_path).read_bytes()))
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
        return cls(chain, key)

    @functools.cached_property
    def chain_der(self) -> tuple[bytes, ...]:
        """The chain in DER, as the Certificate message carries it."""
        return tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)

    @functools.cached_property
    def dns_names(self) -> tuple[str, ...]:
        """The leaf's subjectAltName DNS names, lower-cased."""
        try:
            san = self.chain[0].extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
        except x509.ExtensionNotFound:
            return ()
        return tuple(n.lower() for n in san.value.get_values_for_type(x509.DNSName))

    @functools.cached_property
    def certificate_message(self) -> bytes:
        """Our TLS 1.3 Certificate message (with header), encoded once per key."""
        message = Certificate(b"", tuple(CertificateEntry(d) for d in self.chain_der))
        return frame_handshake(message.msg_type, message.encode())

    @functools.cached_property
    def signature_schemes(self) -> tuple[SignatureScheme, ...]:
        """The CertificateVerify schemes this key signs with, best first.

        The leaf tells an RSASSA-PSS key from an rsaEncryption one (RFC 8446
        §4.2.3); computed once.
        """
        return schemes_for_key(self.private_key, self.chain[0] if self.chain else None)

    @functools.cached_property
    def chain_signatures(self) -> tuple[tuple[int, ...], ...]:
        """The schemes naming each signature of the chain (RFC 8446 §4.4.2.2).

        One entry per certificate that is not self-signed.
        """
        return tuple(
            certificate_signature_schemes(c)
            for c in self.chain
            if c.issuer != c.subject
        )

    def chain_signed_with(self, schemes: Collection[int]) -> bool:
        """Whether every signature of the chain is one of ``schemes``.

        RFC 8446 §4.4.2.2: the chain should be "signed only via the indicated
        supported algorithms" of signature_algorithms_cert (or
        signature_algorithms when that is absent).
        """
        return all(any(s in schemes for s in names) for names in self.chain_signatures)

    def matches(self, server_name: str) -> bool:
        """Whether the leaf names ``server_name`` (exactly or by one wildcard label)."""
        name = server_name.lower().rstrip(".")
        for pattern in self.dns_names:
            if pattern == name:
                return True
            # RFC 6125 §6.4.3: a wildcard covers exactly one leftmost label.
            if pattern.startswith("*.") and name.partition(".")[2] == pattern[2:]:
                return True
        return False


@functools.cache
def system_trust_store() -> tuple[x509.Certificate, ...]:
    """The operating system's CA certificates (OpenSSL's default CA file)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (
        paths.cafile,
        paths.openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            with warnings.catch_warnings():
                # The system store may hold a root with a non-positive serial
                # (RFC 5280 §4.1.2.2 forbids it); it is the system's, and is
                # only ever a trust anchor, never checked as a leaf.
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                pem = Path(candidate).read_bytes()
                return tuple(x509.load_pem_x509_certificates(pem))
    return ()


def load_trust_store(cafile: str | Path | None) -> tuple[x509.Certificate, ...]:
    """CA certificates from a PEM file, or the system store when None."""
    if cafile is None:
        return system_trust_store()
    return tuple(x509.load_pem_x509_certificates(Path(cafile).read_bytes()))


@functools.lru_cache(maxsize=32)
def _store(trust: tuple[x509.Certificate, ...]) -> Store:
    """The verification store of a trust list, built once per list.

    A client config keeps one trust tuple for all its connections; a Store
    made afresh for each handshake also makes its first verification
    slower (about 20 us per handshake with one CA).
    """
    return Store(list(trust))


#: Received certificates longer than this are parsed afresh, never kept.
_CACHED_CERTIFICATE_MAX = 8192


@functools.lru_cache(maxsize=256)
def _parse_cached(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _parse_chain(chain_der: Sequence[bytes], *, cache: bool) -> list[x509.Certificate]:
    """Parse a received chain, leaf first.

    With ``cache`` (a client reading server chains) certificates are parsed
    once and kept, as Go's crypto/tls does (its ``certCache``): a client
    receives the same chains over and over, and a kept certificate also
    keeps its decoded public key, which saves about a fifth of the chain
    check and of the CertificateVerify check. Certificates are public and
    immutable, the cache is bounded (256 of up to 8 KiB), and validation,
    name, validity and CertificateVerify checks still run on every
    handshake. A server does not cache its clients' certificates: a client
    could otherwise learn from the timing whether another client's
    certificate was seen recently.

    Raises:
        BadCertificate: a certificate does not parse (never cached).
    """
    try:
        return [
            _parse_cached(der)
            if cache and len(der) <= _CACHED_CERTIFICATE_MAX
            else x509.load_der_x509_certificate(der)
            for der in chain_der
        ]
    except (ValueError, x509.InvalidVersion):
        raise BadCertificate("certificate does not parse") from None


def verify_server_chain(
    chain_der: Sequence[bytes],
    server_name: str,
    trust: Sequence[x509.Certificate],
    now: float,
) -> x509.Certificate:
    """Validate the server's chain for ``server_name`` and return the leaf.

    Raises:
        BadCertificate: a certificate does not parse, the path does not
            validate, or the leaf does not name ``server_name``.
    """
    certs = _parse_chain(chain_der, cache=True)
    if not certs:
        raise DecodeError("empty certificate chain")
    if not trust:
        raise BadCertificate("no trusted CA certificates configured")
    subject: DNSName | IPAddress = DNSName(server_name)
    if may_be_ip_address(server_name):
        with contextlib.suppress(ValueError):
            subject = IPAddress(ipaddress.ip_address(server_name))
    verifier = (
        PolicyBuilder()
        .store(_store(tuple(trust)))
        .time(datetime.fromtimestamp(now, UTC))
        .build_server_verifier(subject)
    )
    try:
        verifier.verify(certs[0], certs[1:])
    except VerificationError as error:
        raise BadCertificate(f"certificate verification failed: {error}") from None
    except ValueError as error:
        # cryptography parses some fields (subject, extensions) only now.
        raise BadCertificate(f"certificate does not parse: {error}") from None
    return certs[0]


def _chain_alert(error: VerificationError) -> Alert:
    """The RFC 8446 §6.2 alert for a path validation failure.

    As OpenSSL and BoringSSL map X.509 errors (``ssl_verify_alarm_type``):
    no path to a trust anchor is ``unknown_ca``; a certificate outside its
    validity period ``certificate_expired``; one not for this purpose
    (extendedKeyUsage) ``unsupported_certificate``; anything else
    ``bad_certificate``.
    """
    message = str(error)
    if "candidates exhausted" in message and "no interior errors" in message:
        return UnknownCA(f"no path to a trusted CA: {message}")
    if "not valid at validation time" in message:
        return CertificateExpired(message)
    if "EKU" in message:
        return UnsupportedCertificate(message)
    return BadCertificate(f"certificate verification failed: {message}")


def verify_client_chain(
    chain_der: Sequence[bytes],
    trust: Sequence[x509.Certificate],
    now: float,
) -> tuple[x509.Certificate, ...]:
    """Validate a client's chain for TLS client authentication (RFC 5280).

    ``cryptography.x509.verification``'s client policy: a path from the leaf
    to one of ``trust`` at ``now``, with clientAuth in the leaf's
    extendedKeyUsage when it has one.

    Returns:
        The validated chain, leaf first, as built (trust anchor included).

    Raises:
        BadCertificate: a certificate does not parse, or the path is bad.
        UnknownCA: no path to ``trust``.
        CertificateExpired: a certificate is outside its validity period.
        UnsupportedCertificate: the leaf is not for client authentication.
    """
    certs = _parse_chain(chain_der, cache=False)
    verifier = (
        PolicyBuilder()
        .store(_store(tuple(trust)))
        .time(datetime.fromtimestamp(now, UTC))
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(certs[0], certs[1:])
    except VerificationError as error:
        raise _chain_alert(error) from None
    except ValueError as error:
        raise BadCertificate(f"certificate does not parse: {error}") from None
    return tuple(verified.chain)


def parse_leaf(der: bytes) -> x509.Certificate:
    """Parse a certificate without validating it.

    Raises:
        BadCertificate: it does not parse.
    """
    return _parse_chain((der,), cache=False)[0]
