"""HPKE (RFC 9180) base mode, as ECH uses it: one small adapter over pyhpke.

Why pyhpke and not ``cryptography``'s HPKE module: the latter is single-shot
(one ``encrypt``/``decrypt`` per setup, no per-message AAD, no context
reuse). ECH needs a context that seals or opens *twice* with AAD: after a
HelloRetryRequest the second ClientHelloOuter is protected by the same HPKE
context with the next sequence number and an empty ``enc`` (RFC 9849
§6.1.5, §7.1.1). pyhpke exposes RFC 9180 §5.2 contexts that do this.

Only mode 0 (``mode_base``, RFC 9180 §5.1.1) is offered: ECH uses
``SetupBaseS``/``SetupBaseR`` only (RFC 9849 §6.1, §7.1). The algorithms are
the RFC 9180 §7 DHKEMs, HKDFs and AEADs that pyhpke implements; post-quantum
KEMs will be added later behind the same API.

Everything that can fail because of the peer (a bad ``enc``, a public key
that is not on the curve, an authentication failure) raises
:class:`HPKEError`, which callers treat as "this ciphertext is not for us"
(RFC 9849 §7.1: a failed trial decryption is not an error).
"""

from __future__ import annotations

import functools
import hmac
from enum import IntEnum
from typing import Final, cast

import pyhpke
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from pyhpke.recipient_context import RecipientContext as _PyRecipientContext
from pyhpke.sender_context import SenderContext as _PySenderContext

__all__ = [
    "AEAD",
    "KDF",
    "KEM",
    "HPKEError",
    "PrivateKey",
    "RecipientContext",
    "SenderContext",
    "enc_length",
    "is_supported",
    "setup_base_recipient",
    "setup_base_sender",
    "tag_length",
]


class KEM(IntEnum):
    """HPKE KEM identifiers (RFC 9180 §7.1)."""

    DHKEM_P256_HKDF_SHA256 = 0x0010
    DHKEM_P384_HKDF_SHA384 = 0x0011
    DHKEM_P521_HKDF_SHA512 = 0x0012
    DHKEM_X25519_HKDF_SHA256 = 0x0020
    DHKEM_X448_HKDF_SHA512 = 0x0021


class KDF(IntEnum):
    """HPKE KDF identifiers (RFC 9180 §7.2)."""

    HKDF_SHA256 = 0x0001
    HKDF_SHA384 = 0x0002
    HKDF_SHA512 = 0x0003


class AEAD(IntEnum):
    """HPKE AEAD identifiers (RFC 9180 §7.3); export-only 0xFFFF is not offered."""

    AES_128_GCM = 0x0001
    AES_256_GCM = 0x0002
    CHACHA20_POLY1305 = 0x0003


class HPKEError(Exception):
    """An HPKE operation failed: bad ``enc``, bad key, or failed ``Open``.

    Callers treat it as "not for us" (RFC 9849 §7.1), never as an alert by
    itself.
    """


# Nenc = Npk (RFC 9180 §7.1, Table 2) and Nsk.
_NENC: Final[dict[int, int]] = {
    KEM.DHKEM_P256_HKDF_SHA256: 65,
    KEM.DHKEM_P384_HKDF_SHA384: 97,
    KEM.DHKEM_P521_HKDF_SHA512: 133,
    KEM.DHKEM_X25519_HKDF_SHA256: 32,
    KEM.DHKEM_X448_HKDF_SHA512: 56,
}
_NSK: Final[dict[int, int]] = {
    KEM.DHKEM_P256_HKDF_SHA256: 32,
    KEM.DHKEM_P384_HKDF_SHA384: 48,
    KEM.DHKEM_P521_HKDF_SHA512: 66,
    KEM.DHKEM_X25519_HKDF_SHA256: 32,
    KEM.DHKEM_X448_HKDF_SHA512: 56,
}
_CURVES: Final[dict[int, type[ec.EllipticCurve]]] = {
    KEM.DHKEM_P256_HKDF_SHA256: ec.SECP256R1,
    KEM.DHKEM_P384_HKDF_SHA384: ec.SECP384R1,
    KEM.DHKEM_P521_HKDF_SHA512: ec.SECP521R1,
}
_KEM_BY_CURVE: Final[dict[str, int]] = {
    "secp256r1": KEM.DHKEM_P256_HKDF_SHA256,
    "secp384r1": KEM.DHKEM_P384_HKDF_SHA384,
    "secp521r1": KEM.DHKEM_P521_HKDF_SHA512,
}
_KDF_IDS: Final = frozenset(int(k) for k in KDF)
_AEAD_IDS: Final = frozenset(int(a) for a in AEAD)
_NT: Final = 16  # every AEAD in RFC 9180 §7.3 has a 16-byte tag

_SupportedKey = (
    x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey
)


def is_supported(
    kem_id: int, kdf_id: int | None = None, aead_id: int | None = None
) -> bool:
    """Whether we implement this KEM (and, if given, this KDF and AEAD).

    Args:
        kem_id: An HPKE KEM id from an ECHConfig.
        kdf_id: An HPKE KDF id, or ``None`` to check the KEM only.
        aead_id: An HPKE AEAD id, or ``None`` to check the KEM (and KDF) only.

    Returns:
        ``True`` if :func:`setup_base_sender` and :func:`setup_base_recipient`
        accept the combination (RFC 9849 §6.1: a config is usable only if its
        KEM and one of its suites are supported).
    """
    if kem_id not in _NENC:
        return False
    if kdf_id is not None and kdf_id not in _KDF_IDS:
        return False
    return aead_id is None or aead_id in _AEAD_IDS


def enc_length(kem_id: int) -> int:
    """``Nenc`` for a KEM (RFC 9180 §7.1).

    Raises:
        ValueError: The KEM is not supported.
    """
    try:
        return _NENC[kem_id]
    except KeyError:
        raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}") from None


def tag_length(aead_id: int) -> int:
    """``Nt`` for an AEAD (RFC 9180 §7.3): 16 for every supported AEAD.

    Raises:
        ValueError: The AEAD is not supported.
    """
    if aead_id not in _AEAD_IDS:
        raise ValueError(f"unsupported HPKE AEAD 0x{aead_id:04x}")
    return _NT


@functools.cache
def _suite(kem_id: int, kdf_id: int, aead_id: int) -> pyhpke.CipherSuite:
    # Cached: the server builds a recipient context per handshake (RFC 9849
    # §7.1) and suite construction is not free.
    if not is_supported(kem_id, kdf_id, aead_id):
        raise HPKEError(
            f"unsupported HPKE suite kem=0x{kem_id:04x} kdf=0x{kdf_id:04x} "
            f"aead=0x{aead_id:04x}"
        )
    return pyhpke.CipherSuite.new(
        pyhpke.KEMId(kem_id), pyhpke.KDFId(kdf_id), pyhpke.AEADId(aead_id)
    )


class SenderContext:
    """An RFC 9180 §5.2 sender context (``ContextS``).

    Each :meth:`seal` uses the next sequence number, as ECH needs for the
    second ClientHelloOuter after HelloRetryRequest (RFC 9849 §6.1.5).
    """

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _PySenderContext) -> None:
        self._ctx = ctx

    def __repr__(self) -> str:
        return "<SenderContext>"

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """``ContextS.Seal(aad, pt)`` (RFC 9180 §5.2).

        Args:
            aad: Additional authenticated data (ECH: ClientHelloOuterAAD).
            plaintext: The message to protect.

        Returns:
            The ciphertext, ``len(plaintext) + Nt`` bytes.
        """
        try:
            return self._ctx.seal(bytes(plaintext), bytes(aad))
        except pyhpke.PyHPKEError as err:  # pragma: no cover - only seq overflow
            raise HPKEError("HPKE seal failed") from err


class RecipientContext:
    """An RFC 9180 §5.2 recipient context (``ContextR``)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _PyRecipientContext) -> None:
        self._ctx = ctx

    def __repr__(self) -> str:
        return "<RecipientContext>"

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        """``ContextR.Open(aad, ct)`` (RFC 9180 §5.2).

        RFC 9180 §5.2 increments the sequence number only after a successful
        open. pyhpke increments it before trying, so a failure restores it
        here; otherwise one bad ciphertext would desynchronize the context.

        Args:
            aad: Additional authenticated data (ECH: ClientHelloOuterAAD).
            ciphertext: The sealed message.

        Returns:
            The plaintext.

        Raises:
            HPKEError: Authentication failed.
        """
        seq = self._ctx._seq
        try:
            return self._ctx.open(bytes(ciphertext), bytes(aad))
        except pyhpke.PyHPKEError as err:
            self._ctx._seq = seq
            raise HPKEError("HPKE open failed") from err


class PrivateKey:
    """An HPKE private key for one KEM (RFC 9180 §4, §7.1).

    ``repr`` shows the KEM only, never key material.
    """

    __slots__ = ("_hpke_key", "_key", "_public", "kem_id")

    kem_id: int

    def __init__(self, kem_id: int, key: _SupportedKey) -> None:
        """Wrap a ``cryptography`` private key; prefer the classmethods."""
        if kem_id not in _NENC:
            raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}")
        expected = _kem_for_key(key)
        if expected != kem_id:
            raise ValueError(f"key type does not match KEM 0x{kem_id:04x}")
        self.kem_id = KEM(kem_id)
        self._key = key
        self._hpke_key = pyhpke.KEMKey.from_pyca_cryptography_key(key)
        self._public = _serialize_public_key(key)

    def __repr__(self) -> str:
        return f"<PrivateKey {KEM(self.kem_id).name}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return self.kem_id == other.kem_id and hmac.compare_digest(
            self.to_bytes(), other.to_bytes()
        )

    def __hash__(self) -> int:
        return hash((self.kem_id, self._public))

    @classmethod
    def generate(cls, kem_id: int) -> PrivateKey:
        """A fresh random key (RFC 9180 §4 ``GenerateKeyPair``).

        Raises:
            ValueError: The KEM is not supported.
        """
        key: _SupportedKey
        if kem_id == KEM.DHKEM_X25519_HKDF_SHA256:
            key = x25519.X25519PrivateKey.generate()
        elif kem_id == KEM.DHKEM_X448_HKDF_SHA512:
            key = x448.X448PrivateKey.generate()
        elif kem_id in _CURVES:
            key = ec.generate_private_key(_CURVES[kem_id]())
        else:
            raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}")
        return cls(kem_id, key)

    @classmethod
    def from_bytes(cls, kem_id: int, data: bytes) -> PrivateKey:
        """``DeserializePrivateKey`` (RFC 9180 §7.1.2).

        X25519/X448 keys are the raw scalar; NIST-curve keys are the scalar
        as a big-endian integer of exactly ``Nsk`` bytes.

        Raises:
            HPKEError: Unsupported KEM, wrong length, or an invalid scalar.
        """
        nsk = _NSK.get(kem_id)
        if nsk is None:
            raise HPKEError(f"unsupported HPKE KEM 0x{kem_id:04x}")
        if len(data) != nsk:
            raise HPKEError(f"private key must be {nsk} bytes, got {len(data)}")
        key: _SupportedKey
        try:
            if kem_id == KEM.DHKEM_X25519_HKDF_SHA256:
                key = x25519.X25519PrivateKey.from_private_bytes(bytes(data))
            elif kem_id == KEM.DHKEM_X448_HKDF_SHA512:
                key = x448.X448PrivateKey.from_private_bytes(bytes(data))
            else:
                key = ec.derive_private_key(
                    int.from_bytes(data, "big"), _CURVES[kem_id]()
                )
        except ValueError as err:
            raise HPKEError("invalid HPKE private key") from err
        return cls(kem_id, key)

    def to_bytes(self) -> bytes:
        """``SerializePrivateKey`` (RFC 9180 §7.1.2)."""
        key = self._key
        if isinstance(key, x25519.X25519PrivateKey | x448.X448PrivateKey):
            return key.private_bytes_raw()
        # pyhpke's own EC serializer pads to key_size *bits*, so do it here.
        return key.private_numbers().private_value.to_bytes(_NSK[self.kem_id], "big")

    def public_key_bytes(self) -> bytes:
        """``SerializePublicKey(pk)`` (RFC 9180 §7.1.1).

        Raw X25519/X448 bytes, or an uncompressed SEC1 point for the NIST
        curves.
        """
        return self._public

    def to_pkcs8_pem(self) -> bytes:
        """The key as an unencrypted PKCS#8 ``PRIVATE KEY`` PEM block.

        RFC 5958 / RFC 7468 §10, the form RFC 9934 puts in ECH key files.
        """
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pkcs8_pem(cls, pem: bytes) -> PrivateKey:
        """Load an unencrypted PEM private key; the KEM follows from its type.

        X25519 → 0x0020, X448 → 0x0021, EC P-256/P-384/P-521 → 0x0010/0x0011/
        0x0012.

        Raises:
            ValueError: Not a PEM private key, encrypted, or a key type that
                has no DHKEM.
        """
        try:
            key = serialization.load_pem_private_key(bytes(pem), password=None)
        except (ValueError, TypeError) as err:
            raise ValueError(f"cannot load PEM private key: {err}") from err
        if not isinstance(
            key,
            x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey,
        ):
            raise ValueError(f"{type(key).__name__} has no HPKE DHKEM")
        kem_id = _kem_for_key(key)
        if kem_id is None:
            raise ValueError("EC curve has no HPKE DHKEM")
        return cls(kem_id, key)


def _kem_for_key(key: _SupportedKey) -> int | None:
    if isinstance(key, x25519.X25519PrivateKey):
        return KEM.DHKEM_X25519_HKDF_SHA256
    if isinstance(key, x448.X448PrivateKey):
        return KEM.DHKEM_X448_HKDF_SHA512
    return _KEM_BY_CURVE.get(key.curve.name)


def _serialize_public_key(key: _SupportedKey) -> bytes:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return public.public_bytes_raw()


def setup_base_sender(
    kem_id: int,
    kdf_id: int,
    aead_id: int,
    public_key: bytes,
    info: bytes,
    *,
    ikm_e: bytes | None = None,
) -> tuple[bytes, SenderContext]:
    """``SetupBaseS(pkR, info)`` (RFC 9180 §5.1.1).

    ECH calls it with ``info = "tls ech" || 0x00 || ECHConfig`` (RFC 9849
    §6.1).

    Args:
        kem_id: HPKE KEM id.
        kdf_id: HPKE KDF id.
        aead_id: HPKE AEAD id.
        public_key: ``SerializePublicKey(pkR)``, exactly ``Npk`` bytes.
        info: Application-supplied context.
        ikm_e: Test hook: derive the ephemeral key with
            ``DeriveKeyPair(ikm_e)`` (RFC 9180 §7.1.3) instead of randomly,
            to reproduce the RFC 9180 Appendix A vectors. Never set it in
            production.

    Returns:
        ``(enc, context)``.

    Raises:
        HPKEError: Unsupported suite, or a public key that does not
            deserialize (wrong length, not on the curve, low order).
    """
    suite = _suite(kem_id, kdf_id, aead_id)
    if len(public_key) != _NENC[kem_id]:
        raise HPKEError(f"HPKE public key must be {_NENC[kem_id]} bytes")
    try:
        pkr = suite.kem.deserialize_public_key(bytes(public_key))
        eks = None if ikm_e is None else suite.kem.derive_key_pair(bytes(ikm_e))
        enc, ctx = suite.create_sender_context(pkr, bytes(info), eks=eks)
    except (ValueError, pyhpke.PyHPKEError) as err:
        # cryptography raises ValueError for off-curve points and for an
        # all-zero X25519/X448 shared secret (RFC 9180 §7.1.4).
        raise HPKEError("HPKE encapsulation failed") from err
    return enc, SenderContext(cast(_PySenderContext, ctx))


def setup_base_recipient(
    kem_id: int,
    kdf_id: int,
    aead_id: int,
    enc: bytes,
    private_key: PrivateKey,
    info: bytes,
) -> RecipientContext:
    """``SetupBaseR(enc, skR, info)`` (RFC 9180 §5.1.1).

    Args:
        kem_id: HPKE KEM id; must be ``private_key.kem_id``.
        kdf_id: HPKE KDF id.
        aead_id: HPKE AEAD id.
        enc: The encapsulated key from the peer, exactly ``Nenc`` bytes.
        private_key: Our key.
        info: Application-supplied context.

    Returns:
        The recipient context.

    Raises:
        HPKEError: Unsupported suite or a bad ``enc`` (wrong length, not on
            the curve, low order).
        ValueError: ``private_key`` belongs to another KEM (our bug).
    """
    if private_key.kem_id != kem_id:
        raise ValueError("private key does not belong to this KEM")
    suite = _suite(kem_id, kdf_id, aead_id)
    if len(enc) != _NENC[kem_id]:
        raise HPKEError(f"HPKE enc must be {_NENC[kem_id]} bytes, got {len(enc)}")
    try:
        ctx = suite.create_recipient_context(
            bytes(enc), private_key._hpke_key, bytes(info)
        )
    except (ValueError, pyhpke.PyHPKEError) as err:
        raise HPKEError("HPKE decapsulation failed") from err
    return RecipientContext(cast(_PyRecipientContext, ctx))
