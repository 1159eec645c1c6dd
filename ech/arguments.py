"""Argument types every ``ech`` command shares: addresses, names, files, numbers.

Each refuses bad input with one line saying what is wrong, through
argparse (``ech connect: error: argument --sni: ...``, exit status 2),
before anything touches the network. One module for the command line
(:mod:`ech.cli`) and the commands that live beside the adapters
(:mod:`ech.probe`, :mod:`ech.fuzz`), which is why it sits in their layer.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import idna
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ech.config import ECHConfigList, InvalidECHConfigList
from ech.keys import parse_ech_pem
from ech.tls import extensions as ext
from ech.tls.certificates import CertifiedKey
from ech.tls.errors import IllegalParameter

__all__ = [
    "add_certificate_pairs",
    "backend",
    "ca_file",
    "certificate_file",
    "client_ca_file",
    "config_list",
    "ech_key_file",
    "host_port",
    "in_range",
    "key_directory",
    "listen_address",
    "load_certified_key",
    "non_negative",
    "port_number",
    "positive",
    "private_key_file",
    "protected_name",
    "read_file",
    "server_name",
    "url_path",
    "usage_error",
]


def _address(text: str, lowest_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    number = int(port)
    if not lowest_port <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"port {number} is outside {lowest_port}-65535 in {text!r}"
        )
    return host.strip("[]") or "127.0.0.1", number


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to connect to (``[v6]:PORT``; an empty host is 127.0.0.1)."""
    return _address(text, 1)


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to listen on; port 0 picks a free one."""
    return _address(text, 0)


def server_name(text: str) -> str:
    """A DNS host name for SNI (RFC 6066 §3) in its ASCII form, or an address.

    A name with non-ASCII labels is converted to A-labels (IDNA2008, RFC
    5891); one trailing dot (the absolute form people type) is dropped, as
    HostName has none. An IP address is kept: the certificate is checked
    against it, and no SNI is sent. Anything else is refused.
    """
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return text
    name = text[:-1] if text.endswith(".") and not text.endswith("..") else text
    try:
        if not name.isascii():
            name = idna.encode(name, uts46=True).decode("ascii")
        ext.check_host_name(name)
    except (idna.IDNAError, UnicodeError, IllegalParameter) as error:
        reason = str(error).removeprefix("illegal_parameter: ")
        message = f"{text!r} is not a host name: {reason}"
        raise argparse.ArgumentTypeError(message) from None
    return name


def read_file(text: str) -> bytes:
    """The bytes of the file named ``text``, or one line saying why not.

    An empty value is refused rather than read as ``.``, and a directory,
    a missing or an unreadable file each say so (``strerror``: "Is a
    directory", "No such file or directory", "Permission denied").

    Raises:
        argparse.ArgumentTypeError: the file cannot be read.
    """
    if not text:
        raise argparse.ArgumentTypeError("an empty value is no file name")
    try:
        return Path(text).read_bytes()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{text}: {error.strerror}") from None


def _load_certificates(text: str, fix: str = "") -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(read_file(text))
    except ValueError:
        certificates = []
    if not certificates:
        raise argparse.ArgumentTypeError(f"{text}: no PEM certificate in it{fix}")
    return certificates


def _certificates(text: str, fix: str = "") -> str:
    _load_certificates(text, fix)
    return text


_CHAIN_FIX = "; give the PEM certificate chain, leaf first"


def ca_file(text: str) -> str:
    """A PEM file of CA certificates (read now, so a wrong file fails early)."""
    return _certificates(text)


def client_ca_file(text: str) -> str:
    """``ech serve --client-ca``: the CAs that issue client certificates."""
    return _certificates(
        text, "; give the PEM certificates of the CAs that issue client certificates"
    )


def certificate_file(text: str) -> str:
    """A PEM certificate chain, leaf first (``--cert``), read now."""
    return _certificates(text, _CHAIN_FIX)


def _private_key(text: str) -> PrivateKeyTypes:
    data = read_file(text)
    try:
        return serialization.load_pem_private_key(data, None)
    except TypeError:  # cryptography: encrypted, and no password given
        message = f"{text}: the key is encrypted; give it unencrypted (mode 0600)"
    except UnsupportedAlgorithm:
        message = (
            f"{text}: a private key of a type we cannot use; use an ECDSA, "
            "RSA, Ed25519 or Ed448 key"
        )
    except ValueError:
        message = (
            f"{text}: no PEM private key in it; give the PEM private key "
            "the certificate was issued for"
        )
    raise argparse.ArgumentTypeError(message) from None


def private_key_file(text: str) -> str:
    """An unencrypted PEM private key (``--key``), read now.

    The key read here is dropped at once; the server or client loads it
    again, paired with its certificate (:func:`load_certified_key`).
    """
    _private_key(text)
    return text


def ech_key_file(text: str) -> Path:
    """An RFC 9934 ECH key file (``--ech-key``), read now.

    The base64 ECHConfigList ``ech keygen`` prints is the usual wrong file
    (``ech.b64`` beside ``ech.pem``): with no PEM block at all, say so.
    """
    data = read_file(text)
    try:
        parse_ech_pem(data)
    except ValueError as error:
        printed = (
            "; this looks like the ECHConfigList ech keygen printed: give the key "
            "file it wrote with -o"
            if b"-----BEGIN" not in data
            else ""
        )
        raise argparse.ArgumentTypeError(
            f"{text}: {error}; make an ECH key file with ech keygen -o FILE{printed}"
        ) from None
    return Path(text)


def key_directory(text: str) -> Path:
    """A directory of ECH keys (``--ech-key-dir``); never the empty value.

    An empty value would be ``.``, the working directory; whether the
    directory exists is for the key ring to say when it loads it.
    """
    if not text:
        raise argparse.ArgumentTypeError(
            "an empty value is no directory name; give the directory "
            "ech keygen --rotate DIR keeps"
        )
    return Path(text)


def load_certified_key(cert_path: str | Path, key_path: str | Path) -> CertifiedKey:
    """A certificate chain and its private key, checked to belong together.

    Unlike :meth:`CertifiedKey.load`, which reads both files as they are,
    this checks that the key is the leaf's (equal public keys), so a server
    given the wrong key refuses to start, naming both files, rather than
    sending CertificateVerify signatures no client accepts (RFC 8446
    §4.4.3).

    Raises:
        ValueError: a file cannot be read or parsed, or the key is not the
            certificate's; the message names the file(s), on one line.
    """
    try:
        chain = tuple(_load_certificates(str(cert_path), _CHAIN_FIX))
        key = _private_key(str(key_path))
    except argparse.ArgumentTypeError as error:
        raise ValueError(str(error)) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    leaf = chain[0].public_key().public_bytes(der, spki)
    if key.public_key().public_bytes(der, spki) != leaf:
        raise ValueError(
            f"{key_path} is not the private key of {cert_path}: they do not "
            "match; give each --cert the --key it was issued for, in the same order"
        )
    return CertifiedKey(chain, key)


def add_certificate_pairs(
    parser: argparse.ArgumentParser, *, cert_help: str, key_help: str
) -> None:
    """``--cert CHAIN.pem`` and ``--key KEY.pem``: required, repeatable, paired.

    The n-th ``--key`` belongs to the n-th ``--cert``; the command pairs
    them with :func:`load_certified_key`, which refuses a mismatch.
    """
    parser.add_argument(
        "--cert",
        action="append",
        required=True,
        default=[],
        type=certificate_file,
        metavar="CHAIN.pem",
        help=cert_help,
    )
    parser.add_argument(
        "--key",
        action="append",
        required=True,
        default=[],
        type=private_key_file,
        metavar="KEY.pem",
        help=key_help,
    )


def usage_error(command: str, message: str) -> NoReturn:
    """End ``ech COMMAND`` as argparse does for a bad flag: one line, exit 2.

    For what one flag's type cannot see: flags that need each other.
    """
    print(f"ech {command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def url_path(text: str) -> str:
    """An absolute path for a URL on our server (``--doh /dns-query``)."""
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"expected a path starting with /, got {text!r}"
        )
    return text


def protected_name(text: str) -> str:
    """A name for ``--require-ech``: a host name, or ``*.`` and one (a wildcard)."""
    wildcard = text.startswith("*.")
    name = server_name(text[2:] if wildcard else text)
    return f"*.{name}" if wildcard else name


def backend(text: str) -> tuple[str, tuple[str, int]]:
    """``NAME=HOST:PORT`` of ``--backend``."""
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT, got {text!r}")
    return name.lower().rstrip("."), host_port(address)


def config_list(text: str) -> ECHConfigList:
    """Base64 text, or ``@FILE`` holding it.

    A file name given without ``@`` (``ech.b64``) gets the hint to write
    ``@ech.b64``: base64 has no ``.``, so a dot, or an existing file, says
    what was meant.
    """
    if text.startswith("@"):
        try:
            data = read_file(text[1:])
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"bad ECHConfigList: {error}") from None
        try:
            encoded = data.decode("ascii")
        except UnicodeDecodeError:
            raise argparse.ArgumentTypeError(
                f"bad ECHConfigList: {text[1:]} is not base64 text"
            ) from None
    else:
        encoded = text
    try:
        return ECHConfigList.from_base64(encoded)
    except InvalidECHConfigList as error:
        message = f"bad ECHConfigList: {error}"
        if text.startswith("@"):
            message = f"{text[1:]}: {message}"
        elif "." in text or Path(text).exists():
            message += f"; to read a file, write @{text}"
        raise argparse.ArgumentTypeError(message) from None


def _number(kind: Callable[[str], float], text: str) -> float:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def non_negative(kind: Callable[[str], float]) -> Callable[[str], float]:
    """A number of ``kind`` that is at least 0."""

    def parse(text: str) -> float:
        value = _number(kind, text)
        if not value >= 0:  # NaN too
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return value

    return parse


def in_range(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high`` (one line, not every choice)."""

    def parse(text: str) -> int:
        value = int(_number(int, text))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}-{high}, got {text}")
        return value

    return parse


def port_number(text: str) -> int:
    """A TCP/UDP port to connect to, 1-65535."""
    return in_range(1, 65535)(text)


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """A number of ``kind`` that is above 0."""

    def parse(text: str) -> float:
        value = _number(kind, text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value

    return parse
