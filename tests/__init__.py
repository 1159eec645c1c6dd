"""Unit and property tests for ``ech`` (importable for shared helpers)."""

from __future__ import annotations
