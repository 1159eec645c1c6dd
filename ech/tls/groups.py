"""Key exchange groups (RFC 8446 §4.2.7, §4.2.8, §7.4), composed from ``cryptography``.

Every group of RFC 8446 that ``cryptography`` implements: x25519, x448,
secp256r1, secp384r1, secp521r1, the RFC 7919 finite-field groups
ffdhe2048 to ffdhe8192 (:mod:`ech.tls.ffdhe`), and the hybrid X25519MLKEM768.

X25519MLKEM768 follows draft-ietf-tls-ecdhe-mlkem: the client share is the
ML-KEM-768 encapsulation key followed by the X25519 public key, the server
share the ML-KEM ciphertext followed by the server's X25519 public key, and
the shared secret the ML-KEM secret followed by the X25519 secret.

Every share is checked before use, and a bad one is ``illegal_parameter``:
its length must be the group's (:func:`check_share`), an EC point must be
uncompressed and on the curve (RFC 8446 §4.2.8.2), an FFDHE value must be
left-padded to the prime's size with 1 < Y < p-1 (§4.2.8.1, RFC 7919 §5.1),
and an X25519 or X448 exchange must not yield all zeros (§7.4.2).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import dh, ec, mlkem, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.utils import CryptographyDeprecationWarning

from ech.tls.enums import NamedGroup
from ech.tls.errors import IllegalParameter
from ech.tls.ffdhe import ffdhe_length, ffdhe_parameters, ffdhe_prime, is_ffdhe

_MLKEM768_EK = 1184
_MLKEM768_CT = 1088

_CURVES: dict[int, type[ec.EllipticCurve]] = {
    NamedGroup.SECP256R1: ec.SECP256R1,
    NamedGroup.SECP384R1: ec.SECP384R1,
    NamedGroup.SECP521R1: ec.SECP521R1,
}

#: The length of a client's share for each fixed-size group (RFC 8446
#: §4.2.8.2: 1 + 2 * field bytes for uncompressed points; RFC 7748 keys;
#: draft-ietf-tls-ecdhe-mlkem §4.1).
_CLIENT_SHARE_LENGTHS: dict[int, int] = {
    NamedGroup.X25519: 32,
    NamedGroup.X448: 56,
    NamedGroup.SECP256R1: 65,
    NamedGroup.SECP384R1: 97,
    NamedGroup.SECP521R1: 133,
    NamedGroup.X25519MLKEM768: _MLKEM768_EK + 32,
}


@dataclass(frozen=True, slots=True)
class KeyShare:
    """A client's private key for one offered group, and its public share."""

    group: NamedGroup
    public: bytes
    _complete: Callable[[bytes], bytes] = field(repr=False)

    def exchange(self, server_share: bytes) -> bytes:
        """Combine with the server's share into the shared secret.

        Raises:
            IllegalParameter: the server's share is malformed or degenerate.
        """
        try:
            return self._complete(server_share)
        except ValueError:
            raise IllegalParameter(f"invalid {self.group} key share") from None


@contextlib.contextmanager
def _finite_field() -> Iterator[None]:
    """``cryptography`` deprecates FFDH; RFC 8446 §4.2.7 still defines it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def client_share_length(group: int) -> int | None:
    """The length a share for ``group`` must have, or None for unknown groups."""
    if is_ffdhe(group):
        return ffdhe_length(group)
    return _CLIENT_SHARE_LENGTHS.get(group)


def check_share(group: int, data: bytes) -> None:
    """A ClientHello share's syntax for its group (RFC 8446 §4.2.8).

    Shares for groups we do not know are not ours to judge and pass.

    Raises:
        IllegalParameter: the length is wrong for the group, or an EC
            share is not an uncompressed point.
    """
    expected = client_share_length(group)
    if expected is not None and len(data) != expected:
        raise IllegalParameter(
            f"{NamedGroup(group)} key share of {len(data)} bytes, not {expected}"
        )
    if group in _CURVES and data[0] != 4:
        # RFC 8446 §4.2.8.2: only the uncompressed form is allowed.
        raise IllegalParameter(f"{NamedGroup(group)} key share is not uncompressed")


def _x25519_peer(data: bytes) -> x25519.X25519PublicKey:
    if len(data) != 32:
        raise ValueError("X25519 share must be 32 bytes")
    return x25519.X25519PublicKey.from_public_bytes(data)


def _x448_peer(data: bytes) -> x448.X448PublicKey:
    if len(data) != 56:
        raise ValueError("X448 share must be 56 bytes")
    return x448.X448PublicKey.from_public_bytes(data)


def _ec_peer(curve: ec.EllipticCurve, data: bytes) -> ec.EllipticCurvePublicKey:
    # RFC 8446 §4.2.8.2: only the uncompressed form is allowed, and the
    # point must be on the curve (from_encoded_point checks it).
    length = 1 + 2 * ((curve.key_size + 7) // 8)
    if len(data) != length or data[0] != 4:
        raise ValueError("EC share must be an uncompressed point")
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, data)


def _ffdhe_peer(group: int, data: bytes) -> dh.DHPublicKey:
    """RFC 8446 §4.2.8.1 and RFC 7919 §5.1: the peer's Y, checked."""
    p = ffdhe_prime(group)
    if len(data) != ffdhe_length(group):
        # "padded to the left with zeros to the size of p in bytes"
        raise ValueError("FFDHE share is not the size of the prime")
    y = int.from_bytes(data, "big")
    if not 1 < y < p - 1:
        # "Peers MUST validate each other's public key Y by ensuring that
        # 1 < Y < p-1."
        raise ValueError("FFDHE share out of range")
    with _finite_field():
        numbers = ffdhe_parameters(group).parameter_numbers()
        return dh.DHPublicNumbers(y, numbers).public_key()


def _ffdhe_share(group: int) -> KeyShare:
    length = ffdhe_length(group)
    with _finite_field():
        key = ffdhe_parameters(group).generate_private_key()
        y = key.public_key().public_numbers().y

    def complete(peer: bytes) -> bytes:
        public = _ffdhe_peer(group, peer)
        with _finite_field():
            secret = key.exchange(public)
        # RFC 8446 §7.4.1: Z "left-padded with zeros up to the size of the prime".
        return secret.rjust(length, b"\x00")

    return KeyShare(NamedGroup(group), y.to_bytes(length, "big"), complete)


def generate_key_share(group: int) -> KeyShare:
    """Make a key share for ``group`` (the client's, or the server's answer).

    Raises:
        ValueError: we do not implement ``group``.
    """
    if group == NamedGroup.X25519:
        xkey = x25519.X25519PrivateKey.generate()
        return KeyShare(
            NamedGroup.X25519,
            xkey.public_key().public_bytes_raw(),
            lambda peer: xkey.exchange(_x25519_peer(peer)),
        )
    if group == NamedGroup.X448:
        key448 = x448.X448PrivateKey.generate()
        return KeyShare(
            NamedGroup.X448,
            key448.public_key().public_bytes_raw(),
            lambda peer: key448.exchange(_x448_peer(peer)),
        )
    if group in _CURVES:
        curve = _CURVES[group]()
        ekey = ec.generate_private_key(curve)
        public = ekey.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return KeyShare(
            NamedGroup(group),
            public,
            lambda peer: ekey.exchange(ec.ECDH(), _ec_peer(curve, peer)),
        )
    if is_ffdhe(group):
        return _ffdhe_share(group)
    if group == NamedGroup.X25519MLKEM768:
        kem = mlkem.MLKEM768PrivateKey.generate()
        xkey = x25519.X25519PrivateKey.generate()

        def complete(peer: bytes) -> bytes:
            if len(peer) != _MLKEM768_CT + 32:
                raise ValueError("X25519MLKEM768 server share has the wrong length")
            return kem.decapsulate(peer[:_MLKEM768_CT]) + xkey.exchange(
                _x25519_peer(peer[_MLKEM768_CT:])
            )

        return KeyShare(
            NamedGroup.X25519MLKEM768,
            kem.public_key().public_bytes_raw() + xkey.public_key().public_bytes_raw(),
            complete,
        )
    raise ValueError(f"unsupported group {group:#06x}")


def respond_to_key_share(group: int, client_share: bytes) -> tuple[bytes, bytes]:
    """Server side: answer a client share with ours and the shared secret.

    Returns:
        ``(server_share, shared_secret)``.

    Raises:
        IllegalParameter: the client's share is malformed or degenerate.
    """
    try:
        if group == NamedGroup.X25519MLKEM768:
            if len(client_share) != _MLKEM768_EK + 32:
                raise ValueError("X25519MLKEM768 client share has the wrong length")
            encaps = mlkem.MLKEM768PublicKey.from_public_bytes(
                client_share[:_MLKEM768_EK]
            )
            kem_secret, ciphertext = encaps.encapsulate()
            share = generate_key_share(NamedGroup.X25519)
            x_secret = share.exchange(client_share[_MLKEM768_EK:])
            return ciphertext + share.public, kem_secret + x_secret
        share = generate_key_share(group)
        return share.public, share.exchange(client_share)
    except ValueError:
        raise IllegalParameter(f"invalid key share for group {group:#06x}") from None


SUPPORTED_GROUPS: frozenset[int] = frozenset(
    {
        NamedGroup.X25519,
        NamedGroup.X448,
        NamedGroup.SECP256R1,
        NamedGroup.SECP384R1,
        NamedGroup.SECP521R1,
        NamedGroup.FFDHE2048,
        NamedGroup.FFDHE3072,
        NamedGroup.FFDHE4096,
        NamedGroup.FFDHE6144,
        NamedGroup.FFDHE8192,
        NamedGroup.X25519MLKEM768,
    }
)
