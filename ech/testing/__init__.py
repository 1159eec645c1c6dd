"""Test tooling for people who test TLS stacks with ``ech``.

:mod:`ech.testing.strategies` holds hypothesis strategies for ECH and TLS 1.3
structures, valid and deliberately broken, each drawn with its wire bytes
(:class:`Drawn`), so a fuzzer can send them to any implementation. It needs
hypothesis: ``pip install 'tls-ech[testing]'``. This package and
:mod:`ech.testing.drawn` do not, so ``import ech`` never does.
"""

from __future__ import annotations

from ech.testing.drawn import (
    Drawn,
    EncodedClientHelloInner,
    SealedClientHello,
    handshake_message,
    plaintext_record,
    seal_client_hello,
)

__all__ = [
    "Drawn",
    "EncodedClientHelloInner",
    "SealedClientHello",
    "handshake_message",
    "plaintext_record",
    "seal_client_hello",
]
