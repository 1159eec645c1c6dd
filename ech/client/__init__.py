"""The TLS client: configuration and the sans-IO connection."""

from __future__ import annotations

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection

__all__ = ["ClientConfig", "ClientConnection"]
