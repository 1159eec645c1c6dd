"""Key exchange groups (RFC 8446 §4.2.7, §7.4), composed from ``cryptography``.

X25519MLKEM768 follows draft-ietf-tls-ecdhe-mlkem: the client share is the
ML-KEM-768 encapsulation key followed by the X25519 public key, the server
share the ML-KEM ciphertext followed by the server's X25519 public key, and
the shared secret the ML-KEM secret followed by the X25519 secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from ech.tls.enums import NamedGroup
from ech.tls.errors import IllegalParameter

_MLKEM768_EK = 1184
_MLKEM768_CT = 1088


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


def _x25519_peer(data: bytes) -> x25519.X25519PublicKey:
    if len(data) != 32:
        raise ValueError("X25519 share must be 32 bytes")
    return x25519.X25519PublicKey.from_public_bytes(data)


def _ec_curve(group: NamedGroup) -> ec.EllipticCurve:
    return ec.SECP256R1() if group == NamedGroup.SECP256R1 else ec.SECP384R1()


def _ec_public(group: NamedGroup, key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _ec_peer(group: NamedGroup, data: bytes) -> ec.EllipticCurvePublicKey:
    # RFC 8446 §4.2.8.2: only the uncompressed form is allowed.
    if not data or data[0] != 4:
        raise ValueError("EC share must be an uncompressed point")
    return ec.EllipticCurvePublicKey.from_encoded_point(_ec_curve(group), data)


def generate_key_share(group: int) -> KeyShare:
    """Make a client key share for ``group``.

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
    if group in (NamedGroup.SECP256R1, NamedGroup.SECP384R1):
        named = NamedGroup(group)
        ekey = ec.generate_private_key(_ec_curve(named))
        return KeyShare(
            named,
            _ec_public(named, ekey),
            lambda peer: ekey.exchange(ec.ECDH(), _ec_peer(named, peer)),
        )
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
        NamedGroup.SECP256R1,
        NamedGroup.SECP384R1,
        NamedGroup.X25519MLKEM768,
    }
)
