"""ech.hpke: RFC 9180 base-mode known answers and the context behaviour ECH needs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ech import hpke
from ech.tls.wire import Reader

VECTORS_PATH = (
    Path(__file__).resolve().parents[2] / "vectors" / "data" / "rfc9180_subset.json"
)
_DOC: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
VECTORS: list[dict[str, Any]] = _DOC["vectors"]
ALL_KEMS = list(hpke.KEM)
ALL_SUITES = [
    (kem, kdf, aead) for kem in hpke.KEM for kdf in hpke.KDF for aead in hpke.AEAD
]
# Enough of a SHAKE128 stream for 1000 (aad, pt) draws of at most 1 + 255 bytes.
_SHAKE_STREAM_LEN = 1000 * 2 * 256


def _vid(v: dict[str, Any]) -> str:
    return f"kem{v['kem_id']:#06x}-kdf{v['kdf_id']}-aead{v['aead_id']}"


def _h(v: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(v[key])


def _pair(
    v: dict[str, Any],
) -> tuple[bytes, hpke.SenderContext, hpke.RecipientContext]:
    kem, kdf, aead = v["kem_id"], v["kdf_id"], v["aead_id"]
    enc, sender = hpke.setup_base_sender(
        kem, kdf, aead, _h(v, "pkRm"), _h(v, "info"), ikm_e=_h(v, "ikmE")
    )
    sk = hpke.PrivateKey.from_bytes(kem, _h(v, "skRm"))
    recipient = hpke.setup_base_recipient(kem, kdf, aead, enc, sk, _h(v, "info"))
    return enc, sender, recipient


def test_vector_file_provenance() -> None:
    assert "RFC 9180 Appendix A" in _DOC["source"]
    assert "src/crypto/hpke/testdata/rfc9180.json" in _DOC["source"]
    assert "1.27.3" in _DOC["source"]
    assert len(VECTORS) == 18
    assert all(v["mode"] == 0 for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=_vid)
def test_rfc9180_base_vector(v: dict[str, Any]) -> None:
    """SetupBaseS(ikmE) reproduces enc and the ciphertexts; SetupBaseR opens them."""
    enc, sender, recipient = _pair(v)
    assert enc == _h(v, "enc")
    assert len(enc) == hpke.enc_length(v["kem_id"])
    for i, e in enumerate(v["encryptions"]):
        assert e["seq"] == i  # consecutive: each seal uses the next sequence number
        aad, pt, ct = (
            bytes.fromhex(e["aad"]),
            bytes.fromhex(e["pt"]),
            bytes.fromhex(e["ct"]),
        )
        assert sender.seal(aad, pt) == ct
        assert len(ct) == len(pt) + hpke.tag_length(v["aead_id"])
        assert recipient.open(aad, ct) == pt


@pytest.mark.parametrize("v", VECTORS, ids=_vid)
def test_rfc9180_accumulated_encryptions(v: dict[str, Any]) -> None:
    """Go's encryptions_accumulated: 1000 seals over SHAKE128-drawn aad/pt."""
    _, sender, recipient = _pair(v)
    # Go's drawRandomInput reads a 1-byte length then that many bytes: opaque<0..255>.
    source = Reader(hashlib.shake_128(b"").digest(_SHAKE_STREAM_LEN))
    sink = hashlib.shake_128()
    for _ in range(1000):
        aad, pt = source.opaque(1), source.opaque(1)
        ct = sender.seal(aad, pt)
        sink.update(ct)
        assert recipient.open(aad, ct) == pt
    assert sink.digest(16) == _h(v, "encryptions_accumulated")


@pytest.mark.parametrize("v", VECTORS, ids=_vid)
def test_private_key_serialization_vector(v: dict[str, Any]) -> None:
    sk = hpke.PrivateKey.from_bytes(v["kem_id"], _h(v, "skRm"))
    assert sk.kem_id == v["kem_id"]
    assert sk.to_bytes() == _h(v, "skRm")
    assert sk.public_key_bytes() == _h(v, "pkRm")


@pytest.mark.requirement("ECH-58")
def test_second_seal_uses_next_sequence_number() -> None:
    """ECH seals twice with one context after HRR (RFC 9849 §6.1.5, ECH-58)."""
    v = VECTORS[0]
    e0, e1 = v["encryptions"][0], v["encryptions"][1]
    # Sealing e1's input first (at seq 0) must not give e1's ciphertext.
    _, fresh, _ = _pair(v)
    assert fresh.seal(bytes.fromhex(e1["aad"]), bytes.fromhex(e1["pt"])) != (
        bytes.fromhex(e1["ct"])
    )
    _, sender, recipient = _pair(v)
    ct0 = sender.seal(bytes.fromhex(e0["aad"]), bytes.fromhex(e0["pt"]))
    ct1 = sender.seal(bytes.fromhex(e1["aad"]), bytes.fromhex(e1["pt"]))
    assert ct1 == bytes.fromhex(e1["ct"])
    # A recipient at seq 0 cannot open the seq-1 ciphertext.
    with pytest.raises(hpke.HPKEError):
        recipient.open(bytes.fromhex(e1["aad"]), ct1)
    assert recipient.open(bytes.fromhex(e0["aad"]), ct0) == bytes.fromhex(e0["pt"])
    assert recipient.open(bytes.fromhex(e1["aad"]), ct1) == bytes.fromhex(e1["pt"])


@pytest.mark.parametrize("v", VECTORS[:6], ids=_vid)
def test_tampered_ciphertext_raises_and_keeps_sequence(v: dict[str, Any]) -> None:
    """RFC 9180 §5.2: Open increments the sequence number only on success."""
    e0 = v["encryptions"][0]
    aad, ct = bytes.fromhex(e0["aad"]), bytes.fromhex(e0["ct"])
    _, _, recipient = _pair(v)
    tampered = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(hpke.HPKEError):
        recipient.open(aad, tampered)
    with pytest.raises(hpke.HPKEError):
        recipient.open(aad + b"x", ct)
    assert recipient.open(aad, ct) == bytes.fromhex(e0["pt"])


@pytest.mark.parametrize("kem", ALL_KEMS, ids=lambda k: k.name)
def test_wrong_enc_length_raises(kem: hpke.KEM) -> None:
    sk = hpke.PrivateKey.generate(kem)
    enc, _ = hpke.setup_base_sender(kem, 1, 1, sk.public_key_bytes(), b"info")
    for bad in (enc[:-1], enc + b"\x00", b""):
        with pytest.raises(hpke.HPKEError):
            hpke.setup_base_recipient(kem, 1, 1, bad, sk, b"info")


@pytest.mark.parametrize(
    "kem", [hpke.KEM.DHKEM_P256_HKDF_SHA256, hpke.KEM.DHKEM_P521_HKDF_SHA512]
)
def test_off_curve_enc_and_public_key_raise(kem: hpke.KEM) -> None:
    sk = hpke.PrivateKey.generate(kem)
    bogus = b"\x04" + bytes(hpke.enc_length(kem) - 1)  # (0, 0) is not on the curve
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_recipient(kem, 1, 1, bogus, sk, b"")
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_sender(kem, 1, 1, bogus, b"")


@pytest.mark.parametrize(
    "kem",
    [
        hpke.KEM.DHKEM_P256_HKDF_SHA256,
        hpke.KEM.DHKEM_P384_HKDF_SHA384,
        hpke.KEM.DHKEM_P521_HKDF_SHA512,
    ],
)
def test_compressed_points_rejected(kem: hpke.KEM) -> None:
    """RFC 9180 §7.1.1: SerializePublicKey is the *uncompressed* point only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    sk = hpke.PrivateKey.generate(kem)
    point = ec.EllipticCurvePublicKey.from_encoded_point(
        {0x10: ec.SECP256R1(), 0x11: ec.SECP384R1(), 0x12: ec.SECP521R1()}[kem],
        sk.public_key_bytes(),
    )
    compressed = point.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_sender(kem, 1, 1, compressed, b"")
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_recipient(kem, 1, 1, compressed, sk, b"")


def test_low_order_x25519_point_raises() -> None:
    """An all-zero X25519 shared secret must fail (RFC 9180 §7.1.4)."""
    sk = hpke.PrivateKey.generate(hpke.KEM.DHKEM_X25519_HKDF_SHA256)
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_recipient(0x20, 1, 1, bytes(32), sk, b"")
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_sender(0x20, 1, 1, bytes(32), b"")


def test_unsupported_suite_raises_hpke_error() -> None:
    sk = hpke.PrivateKey.generate(hpke.KEM.DHKEM_X25519_HKDF_SHA256)
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_recipient(0x20, 1, 0xFFFF, bytes(32), sk, b"")
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_sender(0x20, 0x0010, 1, sk.public_key_bytes(), b"")
    with pytest.raises(ValueError, match="KEM"):
        hpke.setup_base_recipient(0x10, 1, 1, bytes(65), sk, b"")


@pytest.mark.parametrize(("kem", "kdf", "aead"), ALL_SUITES)
def test_round_trip_every_suite(kem: int, kdf: int, aead: int) -> None:
    """Covers P-384, X448 and HKDF-SHA384, which have no vectors in Go's file."""
    sk = hpke.PrivateKey.generate(kem)
    info = b"tls ech\x00config"
    enc, sender = hpke.setup_base_sender(kem, kdf, aead, sk.public_key_bytes(), info)
    recipient = hpke.setup_base_recipient(kem, kdf, aead, enc, sk, info)
    for i in range(3):
        ct = sender.seal(b"aad%d" % i, b"message %d" % i)
        assert recipient.open(b"aad%d" % i, ct) == b"message %d" % i
    # A recipient with another info derives other keys: open fails.
    enc2, sender2 = hpke.setup_base_sender(kem, kdf, aead, sk.public_key_bytes(), info)
    other = hpke.setup_base_recipient(kem, kdf, aead, enc2, sk, b"other info")
    with pytest.raises(hpke.HPKEError):
        other.open(b"", sender2.seal(b"", b"x"))


def test_is_supported_and_lengths() -> None:
    assert hpke.is_supported(0x20)
    assert hpke.is_supported(0x20, 1, 1)
    assert hpke.is_supported(0x21, 3, 3)
    assert not hpke.is_supported(0x30)
    assert hpke.is_supported(0x0041)
    assert not hpke.is_supported(0x0040)  # ML-KEM-512
    assert not hpke.is_supported(0x20, 4)
    assert not hpke.is_supported(0x20, 1, 0xFFFF)  # export-only cannot seal
    assert [hpke.enc_length(k) for k in (0x10, 0x11, 0x12, 0x20, 0x21)] == [
        65,
        97,
        133,
        32,
        56,
    ]
    assert {hpke.tag_length(a) for a in (1, 2, 3)} == {16}
    with pytest.raises(ValueError, match="KEM"):
        hpke.enc_length(0x30)
    with pytest.raises(ValueError, match="AEAD"):
        hpke.tag_length(0xFFFF)


@pytest.mark.parametrize("kem", ALL_KEMS, ids=lambda k: k.name)
def test_pkcs8_pem_round_trip(kem: hpke.KEM) -> None:
    sk = hpke.PrivateKey.generate(kem)
    pem = sk.to_pkcs8_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    back = hpke.PrivateKey.from_pkcs8_pem(pem)
    assert back.kem_id == kem
    assert back.to_bytes() == sk.to_bytes()
    assert back.public_key_bytes() == sk.public_key_bytes()
    assert back == sk
    assert len(sk.public_key_bytes()) == hpke.public_key_length(kem)
    assert hpke.PrivateKey.from_bytes(kem, sk.to_bytes()) == sk


def test_from_pkcs8_pem_rejects_non_kem_keys() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    def pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    with pytest.raises(ValueError, match="DHKEM"):
        hpke.PrivateKey.from_pkcs8_pem(pem(ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(ValueError, match="DHKEM"):
        hpke.PrivateKey.from_pkcs8_pem(pem(ec.generate_private_key(ec.SECP256K1())))
    with pytest.raises(ValueError, match="cannot load"):
        hpke.PrivateKey.from_pkcs8_pem(b"not a pem")


def test_from_bytes_rejects_bad_keys() -> None:
    with pytest.raises(hpke.HPKEError):
        hpke.PrivateKey.from_bytes(0x20, bytes(31))
    with pytest.raises(hpke.HPKEError):
        hpke.PrivateKey.from_bytes(0x10, bytes(32))  # scalar 0
    with pytest.raises(hpke.HPKEError):
        hpke.PrivateKey.from_bytes(0x10, b"\xff" * 32)  # scalar >= group order
    with pytest.raises(hpke.HPKEError):
        hpke.PrivateKey.from_bytes(0x30, bytes(32))
    with pytest.raises(ValueError, match="KEM"):
        hpke.PrivateKey.generate(0x30)


@pytest.mark.parametrize("kem", ALL_KEMS, ids=lambda k: k.name)
def test_repr_hides_key_material(kem: hpke.KEM) -> None:
    sk = hpke.PrivateKey.generate(kem)
    text = repr(sk)
    assert kem.name in text
    secret = sk.to_bytes()
    for needle in (secret.hex(), secret.hex()[:16], repr(secret)[2:18]):
        assert needle not in text
    assert "Context" in repr(
        hpke.setup_base_sender(kem, 1, 1, sk.public_key_bytes(), b"")[1]
    )
