"""Argument types of the probe commands.

The same shapes as :mod:`ech.cli.args`, kept here because the probes sit
below the command line in the layers (``tests/test_layers.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ech.config import ECHConfigList, InvalidECHConfigList


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; an empty host is 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def config_list(text: str) -> ECHConfigList:
    """Base64 text, or ``@FILE`` holding it."""
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        return ECHConfigList.from_base64(text)
    except (OSError, InvalidECHConfigList) as error:
        raise argparse.ArgumentTypeError(f"bad ECHConfigList: {error}") from None


__all__ = ["config_list", "host_port"]
