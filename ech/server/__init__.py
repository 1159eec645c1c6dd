"""The TLS server: configuration and the sans-IO connection."""

from __future__ import annotations

from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection

__all__ = ["ServerConfig", "ServerConnection"]
