"""Argument types the commands share: addresses, config lists, numbers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ech.config import ECHConfigList, InvalidECHConfigList

__all__ = ["backend", "config_list", "host_port", "non_negative", "positive"]


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; an empty host is 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


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
