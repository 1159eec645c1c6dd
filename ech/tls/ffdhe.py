"""The RFC 7919 finite-field Diffie-Hellman groups, for TLS 1.3 (RFC 8446 §4.2.7).

The primes are not copied as hex: they are derived here from RFC 7919's own
formula (Appendix A),

    p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1

with e the base of the natural logarithm, [.] the floor, and X the smallest
value making p a safe prime, which RFC 7919 lists per group. The generator is
2. ``tests/unit/tls/test_groups.py`` checks each derived prime against
OpenSSL's built-in copy and for safe primality. Arithmetic is exact integer
arithmetic; the Diffie-Hellman operations themselves are ``cryptography``'s.
"""

from __future__ import annotations

import functools
from typing import Final

from cryptography.hazmat.primitives.asymmetric import dh

from ech.tls.enums import NamedGroup

#: Bit length b and the offset X of each group (RFC 7919 Appendix A).
FFDHE_PARAMETERS: Final[dict[int, tuple[int, int]]] = {
    NamedGroup.FFDHE2048: (2048, 560316),
    NamedGroup.FFDHE3072: (3072, 2625351),
    NamedGroup.FFDHE4096: (4096, 5736041),
    NamedGroup.FFDHE6144: (6144, 15705020),
    NamedGroup.FFDHE8192: (8192, 10965728),
}

GENERATOR: Final = 2


@functools.cache
def _e_scaled(bits: int) -> int:
    """floor(e * 2^bits), from the series e = sum 1/k! in exact integers.

    Computed with 64 guard bits: each term's floor loses less than one unit,
    and fewer than 2^11 terms are summed.
    """
    scale = 1 << (bits + 64)
    total, term, k = 0, scale, 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> 64


@functools.cache
def ffdhe_prime(group: int) -> int:
    """The prime of an RFC 7919 group, from RFC 7919's formula (Appendix A).

    Raises:
        ValueError: ``group`` is not an FFDHE group.
    """
    try:
        b, x = FFDHE_PARAMETERS[group]
    except KeyError:
        raise ValueError(f"{group:#06x} is not an RFC 7919 group") from None
    return (1 << b) - (1 << (b - 64)) + ((_e_scaled(b - 130) + x) << 64) - 1


@functools.cache
def ffdhe_parameters(group: int) -> dh.DHParameters:
    """``cryptography`` DH parameters for ``group`` (built once)."""
    return dh.DHParameterNumbers(ffdhe_prime(group), GENERATOR).parameters()


def ffdhe_length(group: int) -> int:
    """Bytes of the group's prime: the length of every share and secret."""
    return (ffdhe_prime(group).bit_length() + 7) // 8


def is_ffdhe(group: int) -> bool:
    """Whether ``group`` is one of RFC 7919's."""
    return group in FFDHE_PARAMETERS
