"""Interoperability helpers: peers built from other TLS implementations."""

from __future__ import annotations
