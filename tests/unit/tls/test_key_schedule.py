"""The key schedule (RFC 8446 §7) and the transcript (§4.4.1).

Known values are from RFC 8448 §3 ("Simple 1-RTT Handshake") and §4
("Resumed 0-RTT Handshake"), all with SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from ech.tls.enums import HandshakeType
from ech.tls.key_schedule import (
    EarlySecret,
    exporter,
    finished_verify_data,
    hash_bytes,
    hkdf_expand_label,
    hkdf_extract,
    next_traffic_secret,
    resumption_psk,
    traffic_keys,
    verify_finished,
)
from ech.tls.transcript import Transcript

SHA256 = hashes.SHA256()
h = bytes.fromhex

# RFC 8448 §3.
EARLY_SECRET = h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
DERIVED_FOR_HANDSHAKE = h(
    "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"
)
ECDHE_SHARED_SECRET = h(
    "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d"
)
HANDSHAKE_SECRET = h("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
HASH_CH_SH = h("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
CLIENT_HS_TRAFFIC = h(
    "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21"
)
SERVER_HS_TRAFFIC = h(
    "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"
)
SERVER_HS_KEY = h("3fce516009c21727d0f2e4e86ee403bc")
SERVER_HS_IV = h("5d313eb2671276ee13000b30")
SERVER_FINISHED_KEY = h(
    "008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8"
)
MASTER_SECRET = h("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
HASH_THROUGH_SERVER_FINISHED = h(
    "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13"
)
CLIENT_AP_TRAFFIC = h(
    "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
)
SERVER_AP_TRAFFIC = h(
    "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
)
EXPORTER_MASTER = h("fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50")
HASH_THROUGH_CLIENT_FINISHED = h(
    "209145a96ee8e2a122ff810047cc952684658d6049e86429426db87c54ad143d"
)
RESUMPTION_MASTER = h(
    "7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c"
)
RESUMPTION_PSK = h("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
# RFC 8448 §4.
BINDER_KEY = h("69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
BINDER_HASH = h("63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14")
BINDER = h("3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")


def _reference_expand_label(
    secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label with only the standard library (RFC 5869, RFC 8446 §7.1)."""
    full = b"tls13 " + label
    info = (
        length.to_bytes(2, "big")
        + bytes((len(full),))
        + full
        + bytes((len(context),))
        + context
    )
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(
            secret, block + info + bytes((counter,)), hashlib.sha256
        ).digest()
        out += block
        counter += 1
    return out[:length]


def test_early_secret_rfc8448() -> None:
    assert hkdf_extract(SHA256, b"", bytes(32)) == EARLY_SECRET
    assert EarlySecret.from_psk(SHA256, None).secret == EARLY_SECRET


def test_hkdf_expand_label_derived_rfc8448() -> None:
    empty_hash = hash_bytes(SHA256, b"")
    assert hkdf_expand_label(SHA256, EARLY_SECRET, b"derived", empty_hash, 32) == (
        DERIVED_FOR_HANDSHAKE
    )


def test_handshake_secrets_rfc8448() -> None:
    hs = EarlySecret.from_psk(SHA256, None).handshake_secret(ECDHE_SHARED_SECRET)
    assert hs.secret == HANDSHAKE_SECRET
    assert hs.client_handshake_traffic_secret(HASH_CH_SH) == CLIENT_HS_TRAFFIC
    assert hs.server_handshake_traffic_secret(HASH_CH_SH) == SERVER_HS_TRAFFIC


def test_traffic_keys_rfc8448() -> None:
    keys = traffic_keys(SHA256, SERVER_HS_TRAFFIC, 16)
    assert keys.key == SERVER_HS_KEY
    assert keys.iv == SERVER_HS_IV
    assert "3fce" not in repr(keys)  # keys stay out of reprs


def test_finished_key_rfc8448() -> None:
    assert hkdf_expand_label(SHA256, SERVER_HS_TRAFFIC, b"finished", b"", 32) == (
        SERVER_FINISHED_KEY
    )


def test_master_and_application_secrets_rfc8448() -> None:
    hs = EarlySecret.from_psk(SHA256, None).handshake_secret(ECDHE_SHARED_SECRET)
    master = hs.master_secret()
    assert master.secret == MASTER_SECRET
    assert master.client_application_traffic_secret(HASH_THROUGH_SERVER_FINISHED) == (
        CLIENT_AP_TRAFFIC
    )
    assert master.server_application_traffic_secret(HASH_THROUGH_SERVER_FINISHED) == (
        SERVER_AP_TRAFFIC
    )
    assert (
        master.exporter_master_secret(HASH_THROUGH_SERVER_FINISHED) == EXPORTER_MASTER
    )
    assert master.resumption_master_secret(HASH_THROUGH_CLIENT_FINISHED) == (
        RESUMPTION_MASTER
    )


def test_resumption_psk_rfc8448() -> None:
    assert resumption_psk(SHA256, RESUMPTION_MASTER, b"\x00\x00") == RESUMPTION_PSK


def test_binder_rfc8448() -> None:
    early = EarlySecret.from_psk(SHA256, RESUMPTION_PSK)
    assert early.binder_key() == BINDER_KEY
    assert finished_verify_data(SHA256, BINDER_KEY, BINDER_HASH) == BINDER
    assert verify_finished(SHA256, BINDER_KEY, BINDER_HASH, BINDER)
    assert not verify_finished(SHA256, BINDER_KEY, BINDER_HASH, BINDER[:-1] + b"\x00")
    assert early.binder_key(external=True) != BINDER_KEY


@given(
    secret=st.binary(min_size=32, max_size=32),
    label=st.binary(max_size=20),
    context=st.binary(max_size=48),
    length=st.integers(1, 100),
)
def test_hkdf_expand_label_matches_reference(
    secret: bytes, label: bytes, context: bytes, length: int
) -> None:
    assert hkdf_expand_label(SHA256, secret, label, context, length) == (
        _reference_expand_label(secret, label, context, length)
    )


def test_next_traffic_secret_is_traffic_upd_label() -> None:
    assert next_traffic_secret(SHA256, SERVER_AP_TRAFFIC) == _reference_expand_label(
        SERVER_AP_TRAFFIC, b"traffic upd", b"", 32
    )
    assert next_traffic_secret(SHA256, SERVER_AP_TRAFFIC) != SERVER_AP_TRAFFIC


def test_exporter_follows_rfc8446_7_5() -> None:
    label, context = b"EXPERIMENTAL label", b"ctx"
    empty = hashlib.sha256(b"").digest()
    inner = _reference_expand_label(EXPORTER_MASTER, label, empty, 32)
    expected = _reference_expand_label(
        inner, b"exporter", hashlib.sha256(context).digest(), 20
    )
    assert exporter(SHA256, EXPORTER_MASTER, label, context, 20) == expected


def test_sha384_schedule_lengths() -> None:
    sha384 = hashes.SHA384()
    early = EarlySecret.from_psk(sha384, None)
    assert len(early.secret) == 48
    hs = early.handshake_secret(bytes(32))
    assert len(hs.client_handshake_traffic_secret(bytes(48))) == 48
    assert len(traffic_keys(sha384, hs.secret, 32).key) == 32


# transcript ------------------------------------------------------------------------

CH1 = b"\x01\x00\x00\x03abc"
HRR = b"\x02\x00\x00\x02hr"
CH2 = b"\x01\x00\x00\x03def"


def test_transcript_hashes_messages_added_before_the_algorithm() -> None:
    t = Transcript()
    t.add(CH1)
    with pytest.raises(RuntimeError):
        t.digest()
    t.set_algorithm(SHA256)
    t.add(HRR)
    assert t.digest() == hashlib.sha256(CH1 + HRR).digest()


def test_transcript_message_hash_rewrite() -> None:
    t = Transcript()
    t.add(CH1)
    t.set_algorithm(SHA256)
    t.rewrite_for_hello_retry()
    message_hash = (
        bytes((HandshakeType.MESSAGE_HASH, 0, 0, 32)) + hashlib.sha256(CH1).digest()
    )
    assert message_hash[0] == 254
    assert t.digest() == hashlib.sha256(message_hash).digest()
    t.add(HRR)
    t.add(CH2)
    assert t.digest() == hashlib.sha256(message_hash + HRR + CH2).digest()


def test_transcript_message_hash_rewrite_sha384() -> None:
    t = Transcript()
    t.add(CH1)
    t.set_algorithm(hashes.SHA384())
    t.rewrite_for_hello_retry()
    message_hash = bytes((254, 0, 0, 48)) + hashlib.sha384(CH1).digest()
    assert t.digest() == hashlib.sha384(message_hash).digest()


def test_transcript_copy_is_independent() -> None:
    t = Transcript()
    t.add(CH1)
    pending_copy = t.copy()
    t.set_algorithm(SHA256)
    other = t.copy()
    other.add(HRR)
    assert t.digest() == hashlib.sha256(CH1).digest()
    assert other.digest() == hashlib.sha256(CH1 + HRR).digest()
    pending_copy.set_algorithm(SHA256)
    pending_copy.add(CH2)
    assert pending_copy.digest() == hashlib.sha256(CH1 + CH2).digest()
