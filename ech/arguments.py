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
from collections.abc import Callable
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ech.config import ECHConfigList, InvalidECHConfigList
from ech.keys import load_ech_key
from ech.tls import extensions as ext
from ech.tls.errors import IllegalParameter

__all__ = [
    "add_certificate_arguments",
    "backend",
    "ca_file",
    "certificate_file",
    "config_list",
    "ech_key_file",
    "host_port",
    "in_range",
    "listen_address",
    "non_negative",
    "port_number",
    "positive",
    "private_key_file",
    "server_name",
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


def _read(text: str) -> bytes:
    """The bytes of file ``text``, or one line saying why not (no errno)."""
    try:
        return Path(text).read_bytes()
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{text}: no such file") from None
    except IsADirectoryError:
        raise argparse.ArgumentTypeError(f"{text}: is a directory") from None
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise argparse.ArgumentTypeError(f"{text}: {reason}") from None


def _certificates(text: str, what: str) -> str:
    try:
        certificates = x509.load_pem_x509_certificates(_read(text))
    except ValueError:
        certificates = []
    if not certificates:
        raise argparse.ArgumentTypeError(
            f"{text}: no PEM certificate in it (expected {what} between "
            "-----BEGIN CERTIFICATE----- lines)"
        )
    return text


def ca_file(text: str) -> str:
    """A PEM file of CA certificates (read now, so a wrong file fails early)."""
    return _certificates(text, "the CA certificates")


def certificate_file(text: str) -> str:
    """A PEM certificate chain, leaf first (read now, so a wrong file fails early)."""
    return _certificates(text, "the certificate chain, leaf first,")


def private_key_file(text: str) -> str:
    """A PEM private key without a password (PKCS#8 or traditional)."""
    try:
        serialization.load_pem_private_key(_read(text), None)
    except TypeError:  # encrypted
        raise argparse.ArgumentTypeError(
            f"{text}: the key is encrypted; give one without a password"
        ) from None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text}: no PEM private key in it (expected -----BEGIN PRIVATE "
            "KEY-----; is this the certificate?)"
        ) from None
    except Exception:  # cryptography's UnsupportedAlgorithm
        raise argparse.ArgumentTypeError(
            f"{text}: a private key of a kind we do not support"
        ) from None
    return text


def add_certificate_arguments(parser: argparse.ArgumentParser, cert_help: str) -> None:
    """Repeatable ``--cert CERT.pem --key KEY.pem`` pairs, read when parsing.

    ``ech serve`` and ``ech probe-client`` take them alike; a missing or
    malformed file is refused with the flag and the path before anything
    listens.
    """
    parser.add_argument(
        "--cert",
        action="append",
        required=True,
        default=[],
        type=certificate_file,
        metavar="CERT.pem",
        help=cert_help,
    )
    parser.add_argument(
        "--key",
        action="append",
        required=True,
        default=[],
        type=private_key_file,
        metavar="KEY.pem",
        help="the PEM private key of the --cert in the same position",
    )


def ech_key_file(text: str) -> str:
    """An RFC 9934 ECH key file, as ``ech keygen -o`` writes it."""
    data = _read(text)
    try:
        load_ech_key(text)
    except ValueError as error:
        hint = (
            " (this looks like the printed ECHConfigList; the key file is the"
            " one ech keygen -o wrote)"
            if b"-----BEGIN" not in data
            else ""
        )
        raise argparse.ArgumentTypeError(
            f"{text}: not an ECH key file: {error}{hint}"
        ) from None
    return text


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
        data = _read(text[1:]).decode("ascii", "replace")
        where = f"{text[1:]}: "
    else:
        data, where = text, ""
    try:
        return ECHConfigList.from_base64(data)
    except InvalidECHConfigList as error:
        message = f"{where}bad ECHConfigList: {error}"
        if not where and ("." in text or Path(text).exists()):
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
