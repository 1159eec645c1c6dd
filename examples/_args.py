"""The command line the examples share: URL, --doh, --ca (and --ech-config-list)."""

from __future__ import annotations

import argparse


def parse(description: str) -> argparse.Namespace:
    """``URL [--doh DOH_URL] [--ca CA.pem] [--ech-config-list B64]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("url", help="https://name:port/path")
    parser.add_argument("--doh", help="DoH resolver URL for the HTTPS record")
    parser.add_argument("--ca", help="PEM CA file to trust (else the system's)")
    parser.add_argument("--ech-config-list", help="base64 ECHConfigList (no DNS)")
    return parser.parse_args()
