"""Cipher suites (RFC 8446 §B.4), composed from ``cryptography``'s AEADs.

All five TLS 1.3 suites are here. TLS_AES_128_CCM_8_SHA256 has an 8-byte
tag: the IANA registry marks it "Recommended: N" and RFC 8446 §B.4 leaves it
to constrained devices, and QUIC forbids it (RFC 9001 §5.3). So it is never
in a default list, and a configuration naming it must also opt in (see
:func:`check_cipher_suites`). The record layer takes each suite's tag length
from :attr:`SuiteParams.tag_length`, never a hard-coded 16.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import (
    AESCCM,
    AESGCM,
    ChaCha20Poly1305,
)

from ech.tls.enums import CipherSuite

AEAD = AESGCM | ChaCha20Poly1305 | AESCCM


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """What a TLS 1.3 cipher suite fixes: AEAD, key and tag lengths, and hash."""

    suite: CipherSuite
    key_length: int
    hash_factory: Callable[[], hashes.HashAlgorithm]
    aead_factory: Callable[[bytes], AEAD]
    #: Bytes the AEAD adds to each record (RFC 8446 §5.2 "expansion").
    tag_length: int = 16

    @property
    def hash(self) -> hashes.HashAlgorithm:
        """A fresh instance of the suite's hash."""
        return self.hash_factory()


#: RFC 8446 §B.4 and RFC 6655 §3: AES-128-CCM with a 16-byte tag.
_ccm16 = functools.partial(AESCCM, tag_length=16)
#: RFC 6655 §3: AES-128-CCM with an 8-byte tag.
_ccm8 = functools.partial(AESCCM, tag_length=8)

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
    CipherSuite.TLS_AES_128_CCM_SHA256: SuiteParams(
        CipherSuite.TLS_AES_128_CCM_SHA256, 16, hashes.SHA256, _ccm16
    ),
    CipherSuite.TLS_AES_128_CCM_8_SHA256: SuiteParams(
        CipherSuite.TLS_AES_128_CCM_8_SHA256, 16, hashes.SHA256, _ccm8, tag_length=8
    ),
}

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)

#: Suites QUIC packet protection can use here: aioquic's (RFC 9001 §5.3
#: forbids CCM_8; aioquic implements neither CCM suite).
QUIC_CIPHER_SUITES: frozenset[int] = frozenset(DEFAULT_CIPHER_SUITES)


def check_cipher_suites(suites: Iterable[int], *, allow_ccm_8: bool) -> None:
    """Refuse a configured suite list we cannot or should not run.

    Raises:
        ValueError: an unknown suite, or CCM_8 without ``allow_ccm_8``.
    """
    for suite in suites:
        if suite not in SUITES:
            raise ValueError(f"unsupported cipher suite {suite:#06x}")
        if suite == CipherSuite.TLS_AES_128_CCM_8_SHA256 and not allow_ccm_8:
            raise ValueError(
                "TLS_AES_128_CCM_8_SHA256 (8-byte tag) needs allow_ccm_8=True"
            )


def check_quic_cipher_suites(suites: Iterable[int]) -> tuple[int, ...]:
    """The configured suites QUIC can use (RFC 9001 §5.3), in order.

    Raises:
        ValueError: none is left (CCM_8 is never usable over QUIC; CCM is
            not implemented by aioquic's packet protection).
    """
    usable = tuple(s for s in suites if s in QUIC_CIPHER_SUITES)
    if not usable:
        raise ValueError(
            "no cipher suite usable over QUIC: configure AES-GCM or "
            "ChaCha20-Poly1305 (RFC 9001 §5.3 forbids TLS_AES_128_CCM_8_SHA256)"
        )
    return usable
