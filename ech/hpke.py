"""HPKE (RFC 9180) base mode, as ECH uses it, with post-quantum KEMs.

ECH needs an HPKE context that seals or opens *twice* with AAD: after a
HelloRetryRequest the second ClientHelloOuter is protected by the same HPKE
context with the next sequence number and an empty ``enc`` (RFC 9849
§6.1.5, §7.1.1). Only mode 0 (``mode_base``, RFC 9180 §5.1.1) is offered:
ECH uses ``SetupBaseS``/``SetupBaseR`` only (RFC 9849 §6.1, §7.1).

Two engines sit behind one API (:func:`setup_base_sender`,
:func:`setup_base_recipient`, :class:`PrivateKey`, :class:`SenderContext`,
:class:`RecipientContext`); :func:`_is_pq` is where the choice is made:

* The RFC 9180 §7.1 DHKEMs (``0x0010``-``0x0021``) go to pyhpke, which
  implements the KEM, the §5.1 key schedule and the §5.2 contexts.
* The draft-ietf-hpke-pq KEMs go to this module's own composition, because
  pyhpke does not implement them: ML-KEM-768 (``0x0041``), ML-KEM-1024
  (``0x0042``), MLKEM768-P256 (``0x0050``), MLKEM1024-P384 (``0x0051``) and
  MLKEM768-X25519 a.k.a. X-Wing (``0x647a``). Their KEMs are built from
  ``cryptography``'s ML-KEM, X25519, EC and SHA-3/SHAKE; the RFC 9180 §5.1
  key schedule (``LabeledExtract``/``LabeledExpand``, §4) from its HKDF; the
  §5.2 context from its AES-GCM and ChaCha20-Poly1305. No primitive is
  implemented here. The construction follows Go 1.27.3's ``crypto/hpke``
  (``pq.go``, ``hpke.go``), which implements the same draft, and is checked
  against Go's ``testdata/hpke-pq.json``.

Why not ``cryptography``'s own ``hpke`` module, which has some of these KEMs:
its ``Suite.encrypt``/``decrypt`` are single-shot (one message per setup,
``enc`` prepended, no public per-message AAD, no context to seal again), so
it cannot produce the second ClientHelloOuter, nor take the
ClientHelloOuterAAD. It also lacks MLKEM768-P256.

KDFs: only the RFC 9180 HKDFs. The draft's one-stage SHAKE/TurboSHAKE KDFs
(``0x0010``-``0x0013``) are not offered: Go documents only the HKDFs for ECH
(``crypto/tls.EncryptedClientHelloKey``), and every one of the five KEMs has
an HKDF vector in Go's file.

Keys: ML-KEM private keys are the 64-byte FIPS 203 seed ``d || z``; hybrid
private keys are a 32-byte seed expanded with SHAKE256 into the ML-KEM seed
and the traditional key (draft-ietf-hpke-pq; X-Wing). PKCS#8 forms are in
:meth:`PrivateKey.to_pkcs8_pem`.

Everything that can fail because of the peer (a bad ``enc``, a public key
that is not on the curve, an authentication failure) raises
:class:`HPKEError`, which callers treat as "this ciphertext is not for us"
(RFC 9849 §7.1: a failed trial decryption is not an error).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import os
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, cast

import pyhpke
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
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
    "public_key_length",
    "setup_base_recipient",
    "setup_base_sender",
    "tag_length",
]


class KEM(IntEnum):
    """HPKE KEM identifiers (RFC 9180 §7.1; draft-ietf-hpke-pq §IANA)."""

    DHKEM_P256_HKDF_SHA256 = 0x0010
    DHKEM_P384_HKDF_SHA384 = 0x0011
    DHKEM_P521_HKDF_SHA512 = 0x0012
    DHKEM_X25519_HKDF_SHA256 = 0x0020
    DHKEM_X448_HKDF_SHA512 = 0x0021
    ML_KEM_768 = 0x0041
    ML_KEM_1024 = 0x0042
    MLKEM768_P256 = 0x0050
    MLKEM1024_P384 = 0x0051
    MLKEM768_X25519 = 0x647A
    """X-Wing (draft-connolly-cfrg-xwing-kem), as draft-ietf-hpke-pq uses it."""


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


# ML-KEM sizes (FIPS 203 Table 3): encapsulation key, ciphertext; seed d || z.
_MLKEM768_EK: Final = 1184
_MLKEM768_CT: Final = 1088
_MLKEM1024_EK: Final = 1568
_MLKEM1024_CT: Final = 1568
_MLKEM_SEED: Final = 64
_HYBRID_SEED: Final = 32  # draft-ietf-hpke-pq: Nsk of every hybrid KEM

_PQ_KEMS: Final = frozenset(
    {
        KEM.ML_KEM_768,
        KEM.ML_KEM_1024,
        KEM.MLKEM768_P256,
        KEM.MLKEM1024_P384,
        KEM.MLKEM768_X25519,
    }
)

# Nenc, Npk and Nsk (RFC 9180 §7.1 Table 2; draft-ietf-hpke-pq). For the
# DHKEMs Nenc = Npk; for the KEMs of draft-ietf-hpke-pq they differ.
_NENC: Final[dict[int, int]] = {
    KEM.DHKEM_P256_HKDF_SHA256: 65,
    KEM.DHKEM_P384_HKDF_SHA384: 97,
    KEM.DHKEM_P521_HKDF_SHA512: 133,
    KEM.DHKEM_X25519_HKDF_SHA256: 32,
    KEM.DHKEM_X448_HKDF_SHA512: 56,
    KEM.ML_KEM_768: _MLKEM768_CT,
    KEM.ML_KEM_1024: _MLKEM1024_CT,
    KEM.MLKEM768_P256: _MLKEM768_CT + 65,
    KEM.MLKEM1024_P384: _MLKEM1024_CT + 97,
    KEM.MLKEM768_X25519: _MLKEM768_CT + 32,
}
_NPK: Final[dict[int, int]] = {
    **{kem: _NENC[kem] for kem in _NENC if kem not in _PQ_KEMS},
    KEM.ML_KEM_768: _MLKEM768_EK,
    KEM.ML_KEM_1024: _MLKEM1024_EK,
    KEM.MLKEM768_P256: _MLKEM768_EK + 65,
    KEM.MLKEM1024_P384: _MLKEM1024_EK + 97,
    KEM.MLKEM768_X25519: _MLKEM768_EK + 32,
}
_NSK: Final[dict[int, int]] = {
    KEM.DHKEM_P256_HKDF_SHA256: 32,
    KEM.DHKEM_P384_HKDF_SHA384: 48,
    KEM.DHKEM_P521_HKDF_SHA512: 66,
    KEM.DHKEM_X25519_HKDF_SHA256: 32,
    KEM.DHKEM_X448_HKDF_SHA512: 56,
    KEM.ML_KEM_768: _MLKEM_SEED,
    KEM.ML_KEM_1024: _MLKEM_SEED,
    KEM.MLKEM768_P256: _HYBRID_SEED,
    KEM.MLKEM1024_P384: _HYBRID_SEED,
    KEM.MLKEM768_X25519: _HYBRID_SEED,
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

_MLKEMPrivateKey = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey
_ClassicalKey = (
    x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey
)


def _is_pq(kem_id: int) -> bool:
    """Whether ``kem_id`` goes to our own engine rather than to pyhpke."""
    return kem_id in _PQ_KEMS


@functools.cache
def _mlkem_available() -> bool:
    # cryptography offers ML-KEM only on backends that have it (AWS-LC, or
    # OpenSSL 3.5+); a KEM we cannot run is "not supported" (RFC 9849 §6.1).
    try:
        mlkem.MLKEM1024PrivateKey.from_seed_bytes(bytes(_MLKEM_SEED))
        mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(_MLKEM_SEED))
    except UnsupportedAlgorithm:  # pragma: no cover - depends on the backend
        return False
    return True


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
        KEM and one of its suites are supported). The post-quantum KEMs need
        a ``cryptography`` backend with ML-KEM.
    """
    if kem_id not in _NENC:
        return False
    if _is_pq(kem_id) and not _mlkem_available():  # pragma: no cover
        return False
    if kdf_id is not None and kdf_id not in _KDF_IDS:
        return False
    return aead_id is None or aead_id in _AEAD_IDS


def enc_length(kem_id: int) -> int:
    """``Nenc`` for a KEM (RFC 9180 §7.1; draft-ietf-hpke-pq).

    Equal to :func:`public_key_length` for the DHKEMs only.

    Raises:
        ValueError: The KEM is not supported.
    """
    try:
        return _NENC[kem_id]
    except KeyError:
        raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}") from None


def public_key_length(kem_id: int) -> int:
    """``Npk``, the length of ``SerializePublicKey`` (RFC 9180 §7.1).

    An ECHConfig's ``public_key`` has exactly this length (RFC 9849 §4).

    Raises:
        ValueError: The KEM is not supported.
    """
    try:
        return _NPK[kem_id]
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


def _check_suite(kem_id: int, kdf_id: int, aead_id: int) -> None:
    if not is_supported(kem_id, kdf_id, aead_id):
        raise HPKEError(
            f"unsupported HPKE suite kem=0x{kem_id:04x} kdf=0x{kdf_id:04x} "
            f"aead=0x{aead_id:04x}"
        )


@functools.cache
def _suite(kem_id: int, kdf_id: int, aead_id: int) -> pyhpke.CipherSuite:
    # Cached: the server builds a recipient context per handshake (RFC 9849
    # §7.1) and suite construction is not free.
    _check_suite(kem_id, kdf_id, aead_id)
    return pyhpke.CipherSuite.new(
        pyhpke.KEMId(kem_id), pyhpke.KDFId(kdf_id), pyhpke.AEADId(aead_id)
    )


@functools.lru_cache(maxsize=64)
def _public_key(
    kem_id: int, kdf_id: int, aead_id: int, public_key: bytes
) -> pyhpke.KEMKeyInterface:
    """``DeserializePublicKey(pkR)`` (RFC 9180 §7.1.1), once per ECHConfig key.

    A client seals to the same config's key on every connection; decoding
    and validating the point each time cost ~6 µs of an ECH handshake. Only
    public keys are kept; a bad key raises and is not cached.
    """
    return _suite(kem_id, kdf_id, aead_id).kem.deserialize_public_key(public_key)


# -- RFC 9180 §5.1 key schedule and §5.2 context, for the PQ KEMs -------------

_HASHES: Final[dict[int, type[hashes.HashAlgorithm]]] = {
    KDF.HKDF_SHA256: hashes.SHA256,
    KDF.HKDF_SHA384: hashes.SHA384,
    KDF.HKDF_SHA512: hashes.SHA512,
}
_NK: Final[dict[int, int]] = {
    AEAD.AES_128_GCM: 16,
    AEAD.AES_256_GCM: 32,
    AEAD.CHACHA20_POLY1305: 32,
}
_NN: Final = 12  # Nn of every AEAD in RFC 9180 §7.3
_MAX_SEQ: Final = (1 << (8 * _NN)) - 1  # RFC 9180 §5.2 message limit
_HPKE_V1: Final = b"HPKE-v1"


def _labeled_extract(
    kdf_id: int, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes
) -> bytes:
    """``LabeledExtract(salt, label, ikm)`` (RFC 9180 §4) with HKDF-Extract."""
    return HKDF.extract(_HASHES[kdf_id](), salt, _HPKE_V1 + suite_id + label + ikm)


def _labeled_expand(
    kdf_id: int, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
) -> bytes:
    """``LabeledExpand(prk, label, info, L)`` (RFC 9180 §4) with HKDF-Expand."""
    labeled_info = length.to_bytes(2, "big") + _HPKE_V1 + suite_id + label + info
    return HKDFExpand(_HASHES[kdf_id](), length, labeled_info).derive(prk)


def _key_schedule_base(
    kem_id: int, kdf_id: int, aead_id: int, shared_secret: bytes, info: bytes
) -> tuple[bytes, bytes]:
    """``KeySchedule(mode_base, shared_secret, info, "", "")`` (RFC 9180 §5.1).

    Returns:
        ``(key, base_nonce)``; the exporter secret is not derived, as ECH
        does not export.
    """
    suite_id = (
        b"HPKE"
        + kem_id.to_bytes(2, "big")
        + kdf_id.to_bytes(2, "big")
        + aead_id.to_bytes(2, "big")
    )
    psk_id_hash = _labeled_extract(kdf_id, suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(kdf_id, suite_id, b"", b"info_hash", info)
    key_schedule_context = b"\x00" + psk_id_hash + info_hash  # mode_base
    secret = _labeled_extract(kdf_id, suite_id, shared_secret, b"secret", b"")
    key = _labeled_expand(
        kdf_id, suite_id, secret, b"key", key_schedule_context, _NK[aead_id]
    )
    base_nonce = _labeled_expand(
        kdf_id, suite_id, secret, b"base_nonce", key_schedule_context, _NN
    )
    return key, base_nonce


class _AEADContext:
    """The RFC 9180 §5.2 encryption context: key, base nonce, sequence number."""

    __slots__ = ("_aead", "_base_nonce", "_seq")

    def __init__(self, aead_id: int, key: bytes, base_nonce: bytes) -> None:
        self._aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if aead_id == AEAD.CHACHA20_POLY1305 else AESGCM(key)
        )
        self._base_nonce = int.from_bytes(base_nonce, "big")
        self._seq = 0

    def _nonce(self) -> bytes:
        """``ComputeNonce(seq)`` (RFC 9180 §5.2)."""
        if self._seq >= _MAX_SEQ:  # pragma: no cover - 2^96 - 1 messages
            raise HPKEError("HPKE message limit reached")
        return (self._base_nonce ^ self._seq).to_bytes(_NN, "big")

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        ciphertext = self._aead.encrypt(self._nonce(), plaintext, aad)
        self._seq += 1
        return ciphertext

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        try:
            plaintext = self._aead.decrypt(self._nonce(), ciphertext, aad)
        except InvalidTag as err:
            raise HPKEError("HPKE open failed") from err
        self._seq += 1  # only after a successful open (RFC 9180 §5.2)
        return plaintext


# -- draft-ietf-hpke-pq KEMs ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HybridSpec:
    """One draft-ietf-hpke-pq hybrid KEM (Go 1.27.3 ``crypto/hpke/pq.go``)."""

    label: bytes
    mlkem768: bool  # else ML-KEM-1024
    curve: ec.EllipticCurve | None  # None: X25519
    seed_length: int  # bytes of SHAKE256 output per traditional-key candidate
    point_length: int  # the traditional share: raw X25519 or uncompressed SEC1


_HYBRIDS: Final[dict[int, _HybridSpec]] = {
    # X-Wing's label is the ASCII art "\.//^\" (draft-connolly-cfrg-xwing-kem).
    KEM.MLKEM768_X25519: _HybridSpec(b"\\.//^\\", True, None, 32, 32),
    KEM.MLKEM768_P256: _HybridSpec(b"MLKEM768-P256", True, ec.SECP256R1(), 32, 65),
    KEM.MLKEM1024_P384: _HybridSpec(b"MLKEM1024-P384", False, ec.SECP384R1(), 48, 97),
}
# Enough SHAKE256 output for the ML-KEM seed and 64 traditional-key
# candidates; P-256 rejects a candidate with probability < 2^-32 (P-384:
# 2^-190), X25519 never, so running out is not a practical outcome.
_MAX_CANDIDATES: Final = 64


@dataclass(frozen=True, slots=True, repr=False)
class _HybridKey:
    """A hybrid private key: the 32-byte seed and what it expands to."""

    kem_id: int
    seed: bytes
    pq: _MLKEMPrivateKey
    traditional: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
    public: bytes = field(init=False)

    def __post_init__(self) -> None:
        pq_public = self.pq.public_key().public_bytes_raw()
        object.__setattr__(
            self, "public", pq_public + _traditional_public(self.traditional)
        )


_AnyKey = _ClassicalKey | _MLKEMPrivateKey | _HybridKey


def _traditional_public(
    key: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return public.public_bytes_raw()


def _mlkem_from_seed(mlkem768: bool, seed: bytes) -> _MLKEMPrivateKey:
    if mlkem768:
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    return mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed)


def _expand_hybrid_seed(kem_id: int, seed: bytes) -> _HybridKey:
    """``DeserializePrivateKey`` of a hybrid KEM (draft-ietf-hpke-pq).

    SHAKE256(seed) gives the 64-byte ML-KEM seed, then candidates for the
    traditional private key until one is a valid scalar (X25519 takes any
    32 bytes), as Go 1.27.3 ``hybridKEM.NewPrivateKey`` does.
    """
    spec = _HYBRIDS[kem_id]
    xof = hashes.XOFHash(
        hashes.SHAKE256(digest_size=_MLKEM_SEED + _MAX_CANDIDATES * spec.seed_length)
    )
    xof.update(seed)
    pq = _mlkem_from_seed(spec.mlkem768, xof.squeeze(_MLKEM_SEED))
    for _ in range(_MAX_CANDIDATES):
        candidate = xof.squeeze(spec.seed_length)
        if spec.curve is None:
            return _HybridKey(
                kem_id, seed, pq, x25519.X25519PrivateKey.from_private_bytes(candidate)
            )
        try:
            scalar = ec.derive_private_key(int.from_bytes(candidate, "big"), spec.curve)
        except ValueError:  # zero, or not below the group order: next one
            continue
        return _HybridKey(kem_id, seed, pq, scalar)
    raise HPKEError("hybrid key expansion found no valid scalar")  # pragma: no cover


def _mlkem_public(
    kem_id: int, data: bytes
) -> mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey:
    """An ML-KEM encapsulation key; FIPS 203 §7.2 checks included.

    Raises:
        ValueError: Not a valid encapsulation key.
    """
    if kem_id in (KEM.ML_KEM_768, KEM.MLKEM768_P256, KEM.MLKEM768_X25519):
        return mlkem.MLKEM768PublicKey.from_public_bytes(data)
    return mlkem.MLKEM1024PublicKey.from_public_bytes(data)


def _pq_ciphertext_length(kem_id: int) -> int:
    if kem_id in (KEM.ML_KEM_1024, KEM.MLKEM1024_P384):
        return _MLKEM1024_CT
    return _MLKEM768_CT


def _combine(
    spec: _HybridSpec, ss_pq: bytes, ss_t: bytes, ct_t: bytes, pk_t: bytes
) -> bytes:
    """The hybrid shared secret (draft-ietf-hpke-pq; X-Wing's combiner).

    ``SHA3-256(ss_PQ || ss_T || ct_T || pk_T || label)``.
    """
    digest = hashes.Hash(hashes.SHA3_256())
    for part in (ss_pq, ss_t, ct_t, pk_t, spec.label):
        digest.update(part)
    return digest.finalize()


def _traditional_exchange(
    private: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey, peer: bytes
) -> bytes:
    """The traditional DH: X25519, or ECDH giving the x-coordinate.

    Raises:
        ValueError: ``peer`` is not an uncompressed point on the curve, or
            X25519 gives the all-zero output (a low-order point).
    """
    if isinstance(private, x25519.X25519PrivateKey):
        return private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    if peer[:1] != b"\x04":
        raise ValueError("not an uncompressed point")
    point = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, peer)
    return private.exchange(ec.ECDH(), point)


def _pq_encap(kem_id: int, public_key: bytes) -> tuple[bytes, bytes]:
    """``Encap(pkR)`` for a draft-ietf-hpke-pq KEM.

    Returns:
        ``(shared_secret, enc)``.

    Raises:
        ValueError: The public key does not deserialize.
    """
    spec = _HYBRIDS.get(kem_id)
    if spec is None:
        shared_secret, enc = _mlkem_public(kem_id, public_key).encapsulate()
        return shared_secret, enc
    split = len(public_key) - spec.point_length
    pk_pq, pk_t = public_key[:split], public_key[split:]
    pq = _mlkem_public(kem_id, pk_pq)
    ephemeral: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey = (
        x25519.X25519PrivateKey.generate()
        if spec.curve is None
        else ec.generate_private_key(spec.curve)
    )
    ss_t = _traditional_exchange(ephemeral, pk_t)
    ct_t = _traditional_public(ephemeral)
    ss_pq, ct_pq = pq.encapsulate()
    return _combine(spec, ss_pq, ss_t, ct_t, pk_t), ct_pq + ct_t


def _pq_decap(key: _AnyKey, enc: bytes) -> bytes:
    """``Decap(enc, skR)`` for a draft-ietf-hpke-pq KEM (length checked).

    Raises:
        ValueError: The traditional share is not a valid point.
    """
    if isinstance(key, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
        return key.decapsulate(enc)  # implicit rejection: never fails
    if not isinstance(key, _HybridKey):
        raise TypeError("not a draft-ietf-hpke-pq private key")
    spec = _HYBRIDS[key.kem_id]
    split = _pq_ciphertext_length(key.kem_id)
    ct_pq, ct_t = enc[:split], enc[split:]
    ss_pq = key.pq.decapsulate(ct_pq)
    ss_t = _traditional_exchange(key.traditional, ct_t)
    pk_t = key.public[len(key.public) - spec.point_length :]
    return _combine(spec, ss_pq, ss_t, ct_t, pk_t)


# -- PKCS#8 for the hybrid keys -------------------------------------------------

# AlgorithmIdentifier (RFC 5280 §4.1.1.2, parameters absent) DER per hybrid
# KEM. X-Wing's is id-XWing 1.3.6.1.4.1.62253.25722
# (draft-connolly-cfrg-xwing-kem). MLKEM768-P256 and MLKEM1024-P384 have no
# registered OID for *this* construction (the LAMPS composite ML-KEM OIDs
# name a different combiner and key format), so they use UUID OIDs (ITU-T
# X.667, arc 2.25, no registration needed), local to this project:
#   MLKEM768-P256  2.25.174872694305581547717613190125531353743
#                  (UUID 838f417e-da79-4c97-8991-8ffa6c06d28f)
#   MLKEM1024-P384 2.25.309200486084460916393016866779966457303
#                  (UUID e89dd8f5-8ece-4a57-af2a-45dab56bc5d7)
_HYBRID_ALGORITHMS: Final[dict[int, bytes]] = {
    KEM.MLKEM768_X25519: bytes.fromhex("300d060b2b0601040183e62d81c87a"),
    KEM.MLKEM768_P256: bytes.fromhex(
        "301606146982878fa0dfdba7cab2af89c8e3ffa6e09ba50f"
    ),
    KEM.MLKEM1024_P384: bytes.fromhex(
        "301606146983d19decbdb1ecf2a9afaf9591bbababaf8b57"
    ),
}
_PRIVATE_KEY_PEM: Final = re.compile(
    rb"-----BEGIN PRIVATE KEY-----\r?\n(.*?)-----END PRIVATE KEY-----", re.DOTALL
)


def _hybrid_pkcs8_der(kem_id: int, seed: bytes) -> bytes:
    """``OneAsymmetricKey`` v1 (RFC 5958) holding the raw 32-byte seed.

    ``SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING seed }``: the
    layout the X-Wing draft gives id-XWing keys; every length is below 128,
    so each DER length is one byte.
    """
    body = (
        b"\x02\x01\x00"
        + _HYBRID_ALGORITHMS[kem_id]
        + b"\x04"
        + bytes((len(seed),))
        + seed
    )
    return b"\x30" + bytes((len(body),)) + body


def _hybrid_from_pkcs8_pem(pem: bytes) -> tuple[int, bytes] | None:
    """``(kem_id, seed)`` if ``pem`` is one of our hybrid PKCS#8 keys."""
    match = _PRIVATE_KEY_PEM.search(pem)
    if match is None:
        return None
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error:
        return None
    for kem_id in _HYBRID_ALGORITHMS:
        template = _hybrid_pkcs8_der(kem_id, bytes(_HYBRID_SEED))
        prefix = template[:-_HYBRID_SEED]
        if len(der) == len(template) and der.startswith(prefix):
            return kem_id, der[len(prefix) :]
    return None


def _pem(label: bytes, der: bytes) -> bytes:
    """An RFC 7468 §2 PEM block with 64-character lines."""
    body = base64.b64encode(der)
    lines = b"".join(body[i : i + 64] + b"\n" for i in range(0, len(body), 64))
    return (
        b"-----BEGIN " + label + b"-----\n" + lines + b"-----END " + label + b"-----\n"
    )


# -- contexts -------------------------------------------------------------------


class SenderContext:
    """An RFC 9180 §5.2 sender context (``ContextS``).

    Each :meth:`seal` uses the next sequence number, as ECH needs for the
    second ClientHelloOuter after HelloRetryRequest (RFC 9849 §6.1.5).
    """

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _PySenderContext | _AEADContext) -> None:
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
        if isinstance(self._ctx, _AEADContext):
            return self._ctx.seal(bytes(aad), bytes(plaintext))
        try:
            return self._ctx.seal(bytes(plaintext), bytes(aad))
        except pyhpke.PyHPKEError as err:  # pragma: no cover - only seq overflow
            raise HPKEError("HPKE seal failed") from err


class RecipientContext:
    """An RFC 9180 §5.2 recipient context (``ContextR``)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _PyRecipientContext | _AEADContext) -> None:
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
        if isinstance(self._ctx, _AEADContext):
            return self._ctx.open(bytes(aad), bytes(ciphertext))
        seq = self._ctx._seq
        try:
            return self._ctx.open(bytes(ciphertext), bytes(aad))
        except pyhpke.PyHPKEError as err:
            self._ctx._seq = seq
            raise HPKEError("HPKE open failed") from err


# -- private keys ---------------------------------------------------------------


class PrivateKey:
    """An HPKE private key for one KEM (RFC 9180 §4, §7.1; draft-ietf-hpke-pq).

    ``repr`` shows the KEM only, never key material.
    """

    __slots__ = ("_hpke_key", "_key", "_public", "kem_id")

    kem_id: int

    def __init__(self, kem_id: int, key: _AnyKey) -> None:
        """Wrap a ``cryptography`` private key; prefer the classmethods.

        ``key`` is an X25519, X448 or EC key for a DHKEM, an ML-KEM key for
        ML-KEM-768/1024; hybrid keys come from :meth:`from_bytes` or
        :meth:`generate` only.
        """
        if kem_id not in _NENC:
            raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}")
        expected = _kem_for_key(key)
        if expected != kem_id:
            raise ValueError(f"key type does not match KEM 0x{kem_id:04x}")
        self.kem_id = KEM(kem_id)
        self._key = key
        if isinstance(key, _HybridKey):
            self._hpke_key = None
            self._public = key.public
        elif isinstance(key, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
            self._hpke_key = None
            self._public = key.public_key().public_bytes_raw()
        else:
            self._hpke_key = pyhpke.KEMKey.from_pyca_cryptography_key(key)
            self._public = _traditional_public_any(key)

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

        Hybrid keys are a random 32-byte seed, as in Go 1.27.3.

        Raises:
            ValueError: The KEM is not supported.
        """
        if not is_supported(kem_id):
            raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}")
        key: _AnyKey
        if kem_id == KEM.DHKEM_X25519_HKDF_SHA256:
            key = x25519.X25519PrivateKey.generate()
        elif kem_id == KEM.DHKEM_X448_HKDF_SHA512:
            key = x448.X448PrivateKey.generate()
        elif kem_id in _CURVES:
            key = ec.generate_private_key(_CURVES[kem_id]())
        elif kem_id == KEM.ML_KEM_768:
            key = mlkem.MLKEM768PrivateKey.generate()
        elif kem_id == KEM.ML_KEM_1024:
            key = mlkem.MLKEM1024PrivateKey.generate()
        else:
            key = _expand_hybrid_seed(kem_id, os.urandom(_HYBRID_SEED))
        return cls(kem_id, key)

    @classmethod
    def from_bytes(cls, kem_id: int, data: bytes) -> PrivateKey:
        """``DeserializePrivateKey`` (RFC 9180 §7.1.2; draft-ietf-hpke-pq).

        X25519/X448 keys are the raw scalar; NIST-curve keys are the scalar
        as a big-endian integer of exactly ``Nsk`` bytes; ML-KEM keys are the
        64-byte seed ``d || z`` (FIPS 203); hybrid keys the 32-byte seed.

        Raises:
            HPKEError: Unsupported KEM, wrong length, or an invalid scalar.
        """
        nsk = _NSK.get(kem_id)
        if nsk is None or not is_supported(kem_id):
            raise HPKEError(f"unsupported HPKE KEM 0x{kem_id:04x}")
        if len(data) != nsk:
            raise HPKEError(f"private key must be {nsk} bytes, got {len(data)}")
        data = bytes(data)
        key: _AnyKey
        try:
            if kem_id == KEM.DHKEM_X25519_HKDF_SHA256:
                key = x25519.X25519PrivateKey.from_private_bytes(data)
            elif kem_id == KEM.DHKEM_X448_HKDF_SHA512:
                key = x448.X448PrivateKey.from_private_bytes(data)
            elif kem_id in _CURVES:
                key = ec.derive_private_key(
                    int.from_bytes(data, "big"), _CURVES[kem_id]()
                )
            elif kem_id in _HYBRIDS:
                key = _expand_hybrid_seed(kem_id, data)
            else:
                key = _mlkem_from_seed(kem_id == KEM.ML_KEM_768, data)
        except ValueError as err:
            raise HPKEError("invalid HPKE private key") from err
        return cls(kem_id, key)

    def to_bytes(self) -> bytes:
        """``SerializePrivateKey`` (RFC 9180 §7.1.2; draft-ietf-hpke-pq)."""
        key = self._key
        if isinstance(key, _HybridKey):
            return key.seed
        if isinstance(
            key,
            x25519.X25519PrivateKey
            | x448.X448PrivateKey
            | mlkem.MLKEM768PrivateKey
            | mlkem.MLKEM1024PrivateKey,
        ):
            return key.private_bytes_raw()  # ML-KEM: the 64-byte seed
        # pyhpke's own EC serializer pads to key_size *bits*, so do it here.
        return key.private_numbers().private_value.to_bytes(_NSK[self.kem_id], "big")

    def public_key_bytes(self) -> bytes:
        """``SerializePublicKey(pk)`` (RFC 9180 §7.1.1; draft-ietf-hpke-pq).

        Raw X25519/X448 bytes, an uncompressed SEC1 point for the NIST
        curves, the ML-KEM encapsulation key, or for a hybrid the ML-KEM
        encapsulation key followed by the traditional public key.
        """
        return self._public

    def to_pkcs8_pem(self) -> bytes:
        """The key as an unencrypted PKCS#8 ``PRIVATE KEY`` PEM block.

        RFC 5958 / RFC 7468 §10, the form RFC 9934 puts in ECH key files.
        DHKEM keys are ``cryptography``'s PKCS#8. ML-KEM keys are RFC 9935
        seed-only keys (``cryptography``'s PKCS#8 for ML-KEM). Hybrid keys
        have no standard PKCS#8 form for this construction: they are
        ``OneAsymmetricKey`` v1 holding the raw 32-byte seed under id-XWing
        (1.3.6.1.4.1.62253.25722, draft-connolly-cfrg-xwing-kem, whose key
        is this same seed) or under a project-local UUID OID (2.25.*) for
        MLKEM768-P256 and MLKEM1024-P384; see ``_HYBRID_ALGORITHMS``.
        """
        key = self._key
        if isinstance(key, _HybridKey):
            return _pem(b"PRIVATE KEY", _hybrid_pkcs8_der(key.kem_id, key.seed))
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pkcs8_pem(cls, pem: bytes) -> PrivateKey:
        """Load an unencrypted PEM private key; the KEM follows from its type.

        X25519 → 0x0020, X448 → 0x0021, EC P-256/P-384/P-521 → 0x0010/0x0011/
        0x0012, ML-KEM-768/1024 → 0x0041/0x0042, and the hybrid forms of
        :meth:`to_pkcs8_pem` → 0x647a/0x0050/0x0051.

        Raises:
            ValueError: Not a PEM private key, encrypted, or a key type that
                has no HPKE KEM (DHKEM or draft-ietf-hpke-pq).
        """
        pem = bytes(pem)
        hybrid = _hybrid_from_pkcs8_pem(pem)
        if hybrid is not None:
            try:
                return cls.from_bytes(*hybrid)
            except HPKEError as err:  # pragma: no cover - needs ML-KEM missing
                raise ValueError(f"cannot load PEM private key: {err}") from err
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ValueError(f"cannot load PEM private key: {err}") from err
        if not isinstance(
            key,
            x25519.X25519PrivateKey
            | x448.X448PrivateKey
            | ec.EllipticCurvePrivateKey
            | mlkem.MLKEM768PrivateKey
            | mlkem.MLKEM1024PrivateKey,
        ):
            raise ValueError(f"{type(key).__name__} has no HPKE DHKEM or ML-KEM")
        kem_id = _kem_for_key(key)
        if kem_id is None:
            raise ValueError("EC curve has no HPKE DHKEM")
        return cls(kem_id, key)


def _kem_for_key(key: _AnyKey) -> int | None:
    if isinstance(key, _HybridKey):
        return key.kem_id
    if isinstance(key, mlkem.MLKEM768PrivateKey):
        return KEM.ML_KEM_768
    if isinstance(key, mlkem.MLKEM1024PrivateKey):
        return KEM.ML_KEM_1024
    if isinstance(key, x25519.X25519PrivateKey):
        return KEM.DHKEM_X25519_HKDF_SHA256
    if isinstance(key, x448.X448PrivateKey):
        return KEM.DHKEM_X448_HKDF_SHA512
    return _KEM_BY_CURVE.get(key.curve.name)


def _traditional_public_any(key: _ClassicalKey) -> bytes:
    if isinstance(key, x448.X448PrivateKey):
        return key.public_key().public_bytes_raw()
    return _traditional_public(key)


# -- SetupBaseS / SetupBaseR ----------------------------------------------------


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
        ikm_e: Test hook for the DHKEMs: derive the ephemeral key with
            ``DeriveKeyPair(ikm_e)`` (RFC 9180 §7.1.3) instead of randomly,
            to reproduce the RFC 9180 Appendix A vectors. Never set it in
            production. The draft-ietf-hpke-pq KEMs refuse it:
            ``cryptography``'s ML-KEM encapsulation takes no randomness.

    Returns:
        ``(enc, context)``.

    Raises:
        HPKEError: Unsupported suite, or a public key that does not
            deserialize (wrong length, not on the curve, low order, or an
            ML-KEM key failing the FIPS 203 §7.2 checks).
        ValueError: ``ikm_e`` with a draft-ietf-hpke-pq KEM.
    """
    if _is_pq(kem_id):
        _check_suite(kem_id, kdf_id, aead_id)
        if ikm_e is not None:
            raise ValueError(
                "ikm_e cannot derandomize ML-KEM encapsulation in cryptography"
            )
        if len(public_key) != _NPK[kem_id]:
            raise HPKEError(f"HPKE public key must be {_NPK[kem_id]} bytes")
        try:
            shared_secret, enc = _pq_encap(kem_id, bytes(public_key))
        except ValueError as err:
            raise HPKEError("HPKE encapsulation failed") from err
        key, base_nonce = _key_schedule_base(
            kem_id, kdf_id, aead_id, shared_secret, bytes(info)
        )
        return enc, SenderContext(_AEADContext(aead_id, key, base_nonce))

    suite = _suite(kem_id, kdf_id, aead_id)
    if len(public_key) != _NPK[kem_id]:
        raise HPKEError(f"HPKE public key must be {_NPK[kem_id]} bytes")
    try:
        pkr = _public_key(kem_id, kdf_id, aead_id, bytes(public_key))
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
            the curve, low order). A well-formed but wrong ML-KEM ciphertext
            does not fail here (FIPS 203 implicit rejection): the first
            :meth:`RecipientContext.open` does.
        ValueError: ``private_key`` belongs to another KEM (our bug).
    """
    if private_key.kem_id != kem_id:
        raise ValueError("private key does not belong to this KEM")
    if _is_pq(kem_id):
        _check_suite(kem_id, kdf_id, aead_id)
        if len(enc) != _NENC[kem_id]:
            raise HPKEError(f"HPKE enc must be {_NENC[kem_id]} bytes, got {len(enc)}")
        try:
            shared_secret = _pq_decap(private_key._key, bytes(enc))
        except ValueError as err:
            raise HPKEError("HPKE decapsulation failed") from err
        aead_key, base_nonce = _key_schedule_base(
            kem_id, kdf_id, aead_id, shared_secret, bytes(info)
        )
        return RecipientContext(_AEADContext(aead_id, aead_key, base_nonce))

    suite = _suite(kem_id, kdf_id, aead_id)
    if len(enc) != _NENC[kem_id]:
        raise HPKEError(f"HPKE enc must be {_NENC[kem_id]} bytes, got {len(enc)}")
    hpke_key = private_key._hpke_key
    if hpke_key is None:  # pragma: no cover - kem_id matched a DHKEM above
        raise ValueError("private key does not belong to this KEM")
    try:
        ctx = suite.create_recipient_context(bytes(enc), hpke_key, bytes(info))
    except (ValueError, pyhpke.PyHPKEError) as err:
        raise HPKEError("HPKE decapsulation failed") from err
    return RecipientContext(cast(_PyRecipientContext, ctx))
