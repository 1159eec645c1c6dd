"""Cipher suites (RFC 8446 §B.4), composed from ``cryptography``'s AEADs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ech.tls.enums import CipherSuite

AEAD = AESGCM | ChaCha20Poly1305


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """What a TLS 1.3 cipher suite fixes: AEAD, key length and hash."""

    suite: CipherSuite
    key_length: int
    hash_factory: Callable[[], hashes.HashAlgorithm]
    aead_factory: Callable[[bytes], AEAD]

    @property
    def hash(self) -> hashes.HashAlgorithm:
        """A fresh instance of the suite's hash."""
        return self.hash_factory()


SUITES: dict[int, SuiteParams] = {
    CipherSuite.TLS_AES_128_GCM_SHA256: SuiteParams(
        CipherSuite.TLS_AES_128_GCM_SHA256, 16, hashes.SHA256, AESGCM
    ),
    CipherSuite.TLS_AES_256_GCM_SHA384: SuiteParams(
        CipherSuite.TLS_AES_256_GCM_SHA384, 32, hashes.SHA384, AESGCM
    ),
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: SuiteParams(
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256, 32, hashes.SHA256, ChaCha20Poly1305
    ),
}

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)
