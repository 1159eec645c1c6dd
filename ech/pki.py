"""A throwaway certificate authority for demos, tests and ``ech certs``.

Real deployments bring their own certificates; this makes a CA and leaf
certificates on the fly so ``ech demo`` and the test suite need nothing
from outside, and :func:`write_certificates` writes them as files so that
a first ``ech serve`` needs nothing either. Private keys are written with
mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ech.keys import write_owner_only
from ech.tls.certificates import CertifiedKey

KeyType = Literal["p256", "p384", "p521", "ed25519", "ed448", "rsa2048"]

#: What a leaf is for (its extendedKeyUsage, RFC 5280 §4.2.1.12).
Usage = Literal["server", "client", "both"]


def generate_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key of ``key_type``."""
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "p521":
        return ec.generate_private_key(ec.SECP521R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ed448":
        return ed448.Ed448PrivateKey.generate()
    return rsa.generate_private_key(65537, 2048)


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None  # EdDSA hashes internally
    return hashes.SHA256()


_USAGES = {
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


def _ca_certificate(
    name: str,
    key: CertificateIssuerPrivateKeyTypes,
    issuer: TestCA | None,
    *,
    path_length: int | None,
    days: int,
) -> x509.Certificate:
    """A CA certificate for ``key``, self-signed when ``issuer`` is None."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = key if issuer is None else issuer.key
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=path_length), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
    )
    if issuer is not None:
        identifier = issuer.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier),
            critical=False,
        )
    return builder.sign(signer, _hash_for(signer))


def write_private_key(path: Path, key: PrivateKeyTypes) -> None:
    """Write ``key`` as PKCS#8 PEM, readable by its owner only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_owner_only(path, pem)


@dataclass
class TestCA:
    """A self-signed CA that issues leaf certificates."""

    __test__ = False  # not a pytest class

    key: CertificateIssuerPrivateKeyTypes = field(repr=False)
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "ech test CA", key_type: KeyType = "p256") -> TestCA:
        """Make a new self-signed root CA valid from yesterday for ten years."""
        key = generate_key(key_type)
        return cls(key, _ca_certificate(name, key, None, path_length=None, days=3650))

    def intermediate(self, name: str = "ech test intermediate") -> TestCA:
        """A P-256 intermediate CA signed by this one (pathlen 0, 30 days).

        Its leaves' chains hold only the leaf: append :attr:`certificate`.
        """
        key = generate_key("p256")
        return TestCA(key, _ca_certificate(name, key, self, path_length=0, days=30))

    @property
    def pem(self) -> bytes:
        """The CA certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, *names: str, key_type: KeyType = "p256", usage: Usage = "server"
    ) -> CertifiedKey:
        """A leaf certificate for DNS names or IP addresses, with its key.

        ``usage`` sets extendedKeyUsage: a TLS client certificate needs
        clientAuth (``"client"``), a server's serverAuth.
        """
        key = generate_key(key_type)
        now = datetime.datetime.now(datetime.UTC)
        alt_names: list[x509.GeneralName] = []
        for name in names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt_names.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(_USAGES[usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()
                ),
                critical=False,
            )
            .sign(self.key, _hash_for(self.key))
        )
        return CertifiedKey((cert,), key)

    def write(
        self, directory: Path, certified: CertifiedKey, stem: str
    ) -> tuple[Path, Path]:
        """Write ``stem.pem`` (chain) and ``stem.key`` (0600) into ``directory``."""
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(
            b"".join(
                c.public_bytes(serialization.Encoding.PEM) for c in certified.chain
            )
        )
        write_private_key(key_path, certified.private_key)
        return cert_path, key_path


# `ech certs`: a throwaway CA and certificates as files -------------------------

DEFAULT_PUBLIC_NAME: Final = "public.example"
"""``ech certs``'s client-facing name: the one the network sees."""

DEFAULT_NAMES: Final = ("secret.example",)
"""``ech certs``'s names served behind it: the ones ECH hides."""

LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "::1")
"""Also in the public name's certificate, so that DoH at
``https://127.0.0.1:PORT/dns-query`` verifies: a client sends no SNI to an
address (RFC 6066 §3), and ``ech serve`` then presents its first
certificate, the public name's."""

CA_STEM: Final = "ca"
"""``DIR/ca.pem``: the CA certificate clients trust (its key is not kept)."""


@dataclass(frozen=True)
class IssuedFiles:
    """One name's certificate and key on disk."""

    name: str
    certificate: Path
    """The chain (the leaf alone) in PEM."""
    key: Path
    """The PKCS#8 private key in PEM, mode 0600."""


@dataclass(frozen=True)
class CertificateFiles:
    """What :func:`write_certificates` wrote (or would write)."""

    ca: Path
    public: IssuedFiles
    names: tuple[IssuedFiles, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file, the CA certificate first."""
        leaves = (self.public, *self.names)
        return (self.ca, *(p for f in leaves for p in (f.certificate, f.key)))


def certificate_files(
    directory: Path,
    public_name: str = DEFAULT_PUBLIC_NAME,
    names: Sequence[str] = DEFAULT_NAMES,
) -> CertificateFiles:
    """The files :func:`write_certificates` writes: ``ca.pem``, ``NAME.pem/.key``.

    A name given twice (or the public name again) counts once.

    Raises:
        ValueError: a name is not usable as a file name, or its files would
            be another's (``--name ca`` would be the CA's).
    """
    unique = list(dict.fromkeys([public_name, *names]))
    for name in unique:
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise ValueError(f"{name!r} cannot be a file name in {directory}")
    issued = [
        IssuedFiles(n, directory / f"{n}.pem", directory / f"{n}.key") for n in unique
    ]
    files = CertificateFiles(directory / f"{CA_STEM}.pem", issued[0], tuple(issued[1:]))
    if len(set(files.paths)) != len(files.paths):
        raise ValueError(f"the name {CA_STEM!r} would overwrite the CA certificate")
    return files


def write_certificates(
    directory: Path,
    public_name: str = DEFAULT_PUBLIC_NAME,
    names: Sequence[str] = DEFAULT_NAMES,
    *,
    force: bool = False,
) -> CertificateFiles:
    """A new throwaway CA and a certificate and key per name, as files.

    For trying ECH out and for tests, as ``ech certs``: the CA's own key is
    never written (nothing more can be issued, nothing to steal), every
    private key is mode 0600, and the public name's certificate also
    covers :data:`LOOPBACK_NAMES`. ``directory`` is created if missing.

    Raises:
        FileExistsError: a file exists and ``force`` is false; nothing was
            written (the message lists them).
        ValueError: as :func:`certificate_files`.
    """
    files = certificate_files(directory, public_name, names)
    existing = [str(path) for path in files.paths if path.exists()]
    if existing and not force:
        raise FileExistsError(f"would overwrite {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    ca = TestCA.create(f"ech throwaway CA ({directory.resolve().name})")
    files.ca.write_bytes(ca.pem)
    for issued in (files.public, *files.names):
        extra = LOOPBACK_NAMES if issued is files.public else ()
        ca.write(directory, ca.issue(issued.name, *extra), issued.name)
    return files
