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

from ech.config import ECHConfigList, InvalidECHConfigList
from ech.tls import extensions as ext
from ech.tls.errors import IllegalParameter

__all__ = [
    "backend",
    "ca_file",
    "config_list",
    "host_port",
    "listen_address",
    "non_negative",
    "positive",
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


def ca_file(text: str) -> str:
    """A PEM file of CA certificates (read now, so a wrong file fails early)."""
    try:
        data = Path(text).read_bytes()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{text}: {error.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise argparse.ArgumentTypeError(f"{text}: no PEM certificate in it")
    return text


def backend(text: str) -> tuple[str, tuple[str, int]]:
    """``NAME=HOST:PORT`` of ``--backend``."""
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT, got {text!r}")
    return name.lower().rstrip("."), host_port(address)


def config_list(text: str) -> ECHConfigList:
    """Base64 text, or ``@FILE`` holding it."""
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        return ECHConfigList.from_base64(text)
    except (OSError, InvalidECHConfigList) as error:
        raise argparse.ArgumentTypeError(f"bad ECHConfigList: {error}") from None


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


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """A number of ``kind`` that is above 0."""

    def parse(text: str) -> float:
        value = _number(kind, text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value

    return parse
