"""Key exchange groups (RFC 8446 §4.2.7, §4.2.8, §7.4; RFC 7919).

The FFDHE primes are derived from RFC 7919's formula in :mod:`ech.tls.ffdhe`;
here they are checked against OpenSSL's own built-in copies (an independent
source) and proved safe primes: q = (p-1)/2 a strong probable prime to base 2
and p prime by Pocklington's criterion given q (q > sqrt(p), 2^(p-1) = 1 mod p,
gcd(2^2 - 1, p) = 1).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import warnings

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning

from ech.errors import IllegalParameter
from ech.tls.enums import NamedGroup
from ech.tls.ffdhe import FFDHE_PARAMETERS, GENERATOR, ffdhe_length, ffdhe_prime
from ech.tls.groups import (
    SUPPORTED_GROUPS,
    check_share,
    client_share_length,
    generate_key_share,
    respond_to_key_share,
)

G = NamedGroup
FFDHE = list(FFDHE_PARAMETERS)
NOT_KEM = sorted(g for g in SUPPORTED_GROUPS if g != G.X25519MLKEM768)


def _openssl_prime(group: int) -> int:
    """The prime OpenSSL ships for an RFC 7919 group (``openssl genpkey``)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is missing: apt-get install openssl")
    name = NamedGroup(group).name.lower()
    pem = subprocess.run(
        [
            openssl,
            "genpkey",
            "-genparam",
            "-algorithm",
            "DH",
            "-pkeyopt",
            f"group:{name}",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        numbers = serialization.load_pem_parameters(pem).parameter_numbers()
    assert numbers.g == GENERATOR
    return numbers.p


def _strong_probable_prime(n: int, base: int) -> bool:
    """One Miller-Rabin round."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    x = pow(base, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


@pytest.mark.parametrize("group", FFDHE, ids=str)
def test_ffdhe_prime_is_rfc_7919s(group: int) -> None:
    """RFC 7919 Appendix A: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1."""
    bits, _ = FFDHE_PARAMETERS[group]
    p = ffdhe_prime(group)
    assert p.bit_length() == bits
    assert p >> (bits - 64) == (1 << 64) - 1  # the top 64 bits are ones
    assert p & ((1 << 64) - 1) == (1 << 64) - 1  # and the bottom 64
    assert p == _openssl_prime(group)
    assert ffdhe_length(group) == bits // 8


@pytest.mark.parametrize("group", FFDHE, ids=str)
def test_ffdhe_prime_is_a_safe_prime(group: int) -> None:
    """RFC 7919 §1: "the modulus p is a safe prime": q = (p-1)/2 is prime too."""
    p = ffdhe_prime(group)
    q = (p - 1) // 2
    assert _strong_probable_prime(q, 2)
    # Pocklington: q prime, q | p-1, q > sqrt(p) - 1, 2^(p-1) = 1 (mod p) and
    # gcd(2^((p-1)/q) - 1, p) = gcd(3, p) = 1 make p prime.
    assert q * q > p
    assert pow(2, p - 1, p) == 1
    assert math.gcd(pow(2, 2, p) - 1, p) == 1


@pytest.mark.parametrize("group", NOT_KEM, ids=str)
def test_both_sides_agree_in_every_group(group: int) -> None:
    client = generate_key_share(group)
    server = generate_key_share(group)
    assert len(client.public) == client_share_length(group)
    check_share(group, client.public)
    assert client.exchange(server.public) == server.exchange(client.public)


def test_x25519mlkem768_encapsulates() -> None:
    client = generate_key_share(G.X25519MLKEM768)
    share, secret = respond_to_key_share(G.X25519MLKEM768, client.public)
    assert client.exchange(share) == secret


@pytest.mark.parametrize("group", sorted(SUPPORTED_GROUPS), ids=str)
@pytest.mark.parametrize("delta", [-1, 1])
def test_share_of_the_wrong_length_is_illegal_parameter(group: int, delta: int) -> None:
    """RFC 8446 §4.2.8: a share must be its group's; a wrong one is
    illegal_parameter ("a field ... inconsistent with other fields", §6.2)."""
    good = generate_key_share(group).public
    bad = good + b"\x00" if delta > 0 else good[:-1]
    with pytest.raises(IllegalParameter):
        check_share(group, bad)
    with pytest.raises(IllegalParameter):
        generate_key_share(group).exchange(bad)


def test_share_of_an_unknown_group_is_not_judged() -> None:
    check_share(0x7A7A, b"anything")
    assert client_share_length(0x7A7A) is None


@pytest.mark.parametrize("group", [G.SECP256R1, G.SECP384R1, G.SECP521R1], ids=str)
def test_ec_share_must_be_an_uncompressed_point_on_the_curve(group: int) -> None:
    """RFC 8446 §4.2.8.2: uncompressed form only; the point is validated."""
    good = generate_key_share(group).public
    compressed = bytes((2 + (good[-1] & 1),)) + good[1 : 1 + (len(good) - 1) // 2]
    with pytest.raises(IllegalParameter):
        check_share(group, compressed.ljust(len(good), b"\x00"))
    off_curve = good[:-1] + bytes((good[-1] ^ 1,))
    with pytest.raises(IllegalParameter):
        generate_key_share(group).exchange(off_curve)


@pytest.mark.parametrize(("group", "length"), [(G.X25519, 32), (G.X448, 56)], ids=str)
def test_low_order_montgomery_point_is_illegal_parameter(
    group: int, length: int
) -> None:
    """RFC 8446 §7.4.2: an all-zero X25519/X448 result must be refused."""
    with pytest.raises(IllegalParameter):
        generate_key_share(group).exchange(bytes(length))


@pytest.mark.parametrize("group", [G.FFDHE2048, G.FFDHE3072], ids=str)
def test_ffdhe_public_value_must_be_in_range(group: int) -> None:
    """RFC 8446 §4.2.8.1: "ensuring that 1 < Y < p-1"; RFC 7919 §5.1."""
    p = ffdhe_prime(group)
    length = ffdhe_length(group)
    share = generate_key_share(group)
    for y in (0, 1, p - 1, p, (1 << (8 * length)) - 1):
        with pytest.raises(IllegalParameter):
            share.exchange(y.to_bytes(length, "big"))
    # 2 and p-2 are legal, and the secret still has the prime's length.
    assert len(share.exchange((2).to_bytes(length, "big"))) == length
    assert len(share.exchange((p - 2).to_bytes(length, "big"))) == length


def test_ffdhe_public_value_must_be_left_padded() -> None:
    """RFC 8446 §4.2.8.1: Y "padded to the left with zeros to the size of p"."""
    length = ffdhe_length(G.FFDHE2048)
    with pytest.raises(IllegalParameter):
        generate_key_share(G.FFDHE2048).exchange((5).to_bytes(length - 1, "big"))
    with pytest.raises(IllegalParameter):
        check_share(G.FFDHE2048, (5).to_bytes(length - 1, "big"))


def test_ffdhe_shared_secret_is_left_padded() -> None:
    """RFC 8446 §7.4.1: Z is "left-padded with zeros up to the size of the
    prime": run exchanges until one secret starts with a zero byte."""
    length = ffdhe_length(G.FFDHE2048)
    for _ in range(4000):
        client = generate_key_share(G.FFDHE2048)
        server = generate_key_share(G.FFDHE2048)
        secret = client.exchange(server.public)
        assert len(secret) == length
        assert secret == server.exchange(client.public)
        if secret[0] == 0:
            return
    pytest.fail("no secret with a leading zero byte in 4000 exchanges")


def test_ffdhe_share_is_left_padded() -> None:
    """Our own Y is sent at the prime's size even when it is shorter."""
    length = ffdhe_length(G.FFDHE2048)
    for _ in range(4000):
        share = generate_key_share(G.FFDHE2048)
        assert len(share.public) == length
        if share.public[0] == 0:
            return
    pytest.fail("no public value with a leading zero byte in 4000 keys")
