"""The client-facing and backend server's side of ECH (RFC 9849 §7).

Malicious ClientHelloOuters are built from a real client's hello: decrypt it
with the test's key, edit ClientHelloInner or its encoding, and seal it
again with the ECH primitives. Names mirror BoringSSL's
``ssl/test/runner/ech_tests.go`` where a case maps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

import ech
from ech import hpke
from ech.config import HpkeSymmetricCipherSuite
from ech.errors import (
    Alert,
    DecodeError,
    DecryptError,
    IllegalParameter,
    MissingExtension,
    ProtocolVersion,
)
from ech.events import ECHStatus
from ech.extension import ECHClientHelloOuter
from ech.inner import compress, encode_client_hello_inner, encode_outer_extensions
from ech.keys import generate_ech_key
from ech.server.ech import ECHRejectReason, check_inner
from ech.tls import extensions as ext
from ech.tls.enums import TLS12, TLS13, CipherSuite, ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello
from tests.harness.grease import random_avoiding_config_ids
from tests.helpers import expect_plain_alert
from tests.unit.ech.ech_helpers import (
    CHACHA,
    INNER_NAME,
    MTI,
    PUBLIC_NAME,
    Captured,
    capture,
    ch_frame,
    client_config,
    compressed_types,
    config_list,
    ech_key,
    ech_offer,
    ech_pair,
    encoded_from,
    expected_confirmation,
    hello_record,
    hrr_client_config,
    hrr_server_config,
    pki,
    replace_client_hello,
    seal_outer,
    server_config,
    server_hello_in,
    sh_frame,
    with_extensions,
    zero_tail,
)

E = ExtensionType
MARKER = Extension(E.ENCRYPTED_CLIENT_HELLO, b"\x01")


def reseal(
    cap: Captured,
    encoded: bytes,
    *,
    suite: HpkeSymmetricCipherSuite = MTI,
    config_id: int | None = None,
) -> bytes:
    """The record of ``cap.outer`` carrying ``encoded`` sealed to ``cap.key``."""
    outer, _ = seal_outer(cap.outer, encoded, cap.key, suite=suite, config_id=config_id)
    return hello_record(outer)


def encoded_with_references(inner: ClientHello, refs: list[int]) -> bytes:
    """Our client's encoding of ``inner`` with its 0xfd00 body replaced."""
    compressed = compress(inner, compressed_types(inner))
    body = encode_outer_extensions(refs)
    extensions = [
        Extension(e.type, body) if e.type == E.ECH_OUTER_EXTENSIONS else e
        for e in compressed.extensions
    ]
    return with_extensions(compressed, extensions).encode()


def fresh_server(cap: Captured, **overrides: Any) -> ech.ServerConnection:
    return ech.ServerConnection(server_config(cap.key, **overrides))


def accepts(server: ech.ServerConnection, record: bytes) -> ClientHello:
    """Feed a ClientHello; assert ECH was accepted; return what was negotiated on."""
    server.receive_data(record)
    assert server.ech_status is ECHStatus.ACCEPTED
    assert server_hello_in(server.data_to_send())
    assert server.client_hello is not None
    return server.client_hello


def rejects(server: ech.ServerConnection, record: bytes) -> ClientHello:
    """Feed a ClientHello; assert ECH was rejected and the outer hello used."""
    server.receive_data(record)
    assert server.ech_status is ECHStatus.REJECTED
    assert server_hello_in(server.data_to_send())
    assert server.client_hello is not None
    return server.client_hello


# decryption and reconstruction (§7.1, §5.1) -------------------------------------------


@pytest.mark.requirement("ECH-30", "ECH-80")
def test_accepted_inner_is_what_the_client_sent() -> None:
    """ECH-30 (session id from CHO), ECH-80 (shared mode continues on CHI)."""
    cap = capture(ech_key())
    inner = accepts(fresh_server(cap), hello_record(cap.outer))
    assert inner == cap.inner
    assert inner.legacy_session_id == cap.outer.legacy_session_id


@pytest.mark.requirement("ECH-29")
@pytest.mark.parametrize("padding", [0, 1, 5, 31, 64, 300])
def test_any_padding_length_is_accepted(padding: int) -> None:
    """Older Go padded wrongly; our server accepts every zero-padding length."""
    cap = capture(ech_key())
    inner = accepts(fresh_server(cap), reseal(cap, encoded_from(cap.inner, padding)))
    assert inner == cap.inner


@pytest.mark.requirement("ECH-29")
@pytest.mark.parametrize("padding", [b"\x01", bytes(40) + b"\x02", b"\x00\xff\x00"])
def test_ech_server_bad_padding(padding: bytes) -> None:
    """ECH-Server-BadPadding."""
    cap = capture(ech_key())
    record = reseal(cap, encoded_from(cap.inner) + padding)
    expect_plain_alert(fresh_server(cap), record, IllegalParameter)


@pytest.mark.requirement("ECH-31", "ECH-32")
@pytest.mark.parametrize(
    "refs",
    [
        pytest.param([E.SUPPORTED_GROUPS, E.SUPPORTED_GROUPS], id="Duplicate"),
        pytest.param([E.SUPPORTED_GROUPS, E.EARLY_DATA], id="Missing"),
        pytest.param([E.KEY_SHARE, E.SUPPORTED_GROUPS], id="Misordered"),
        pytest.param([E.SUPPORTED_GROUPS, E.ENCRYPTED_CLIENT_HELLO], id="ReferenceECH"),
    ],
)
def test_ech_server_outer_extensions(refs: list[int]) -> None:
    """ECH-Server-OuterExtensions-Duplicate / -Missing / -Misordered / -ReferenceECH."""
    cap = capture(ech_key())
    record = reseal(cap, encoded_with_references(cap.inner, refs))
    expect_plain_alert(fresh_server(cap), record, IllegalParameter)


@pytest.mark.requirement("ECH-26")
def test_ech_server_outer_extensions_malformed() -> None:
    cap = capture(ech_key())
    compressed = compress(cap.inner, compressed_types(cap.inner))
    extensions = [
        Extension(e.type, b"\x03\x00\x0a\x00")
        if e.type == E.ECH_OUTER_EXTENSIONS
        else e
        for e in compressed.extensions
    ]
    record = reseal(cap, with_extensions(compressed, extensions).encode())
    expect_plain_alert(fresh_server(cap), record, DecodeError)


@pytest.mark.requirement("ECH-25")
def test_garbage_inner_after_decryption_is_an_alert() -> None:
    cap = capture(ech_key())
    expect_plain_alert(fresh_server(cap), reseal(cap, b"\x03\x03\x00"), DecodeError)


# checks on ClientHelloInner (§7.1) ----------------------------------------------------


def set_versions(versions: list[int]) -> Callable[[ClientHello], ClientHello]:
    def hook(hello: ClientHello) -> ClientHello:
        body = ext.encode_client_versions(versions)
        return hello.with_extension(Extension(E.SUPPORTED_VERSIONS, body))

    return hook


@pytest.mark.requirement("ECH-35", "ECH-78")
@pytest.mark.parametrize(
    "versions",
    [[TLS13, TLS12], [TLS12], [TLS13, 0x0301], [0x0A0A, TLS12]],
    ids=["1.3+1.2", "1.2", "1.3+1.0", "grease+1.2"],
)
def test_ech_server_tls12_in_inner(versions: list[int]) -> None:
    """ECH-Server-TLS12InInner."""
    key = ech_key()
    cap = capture(key, client_config(client_hello_hook=set_versions(versions)))
    expect_plain_alert(fresh_server(cap), hello_record(cap.outer), IllegalParameter)


@pytest.mark.requirement("ECH-78")
@pytest.mark.parametrize(
    "versions", [[0x0A0A, TLS13], [TLS13, 0xFAFA], [0x3A3A, TLS13, 0x7A7A]]
)
def test_grease_versions_in_inner_are_ignored(versions: list[int]) -> None:
    """Chrome's GREASE supported_versions (golang/go#71642) must not be refused."""
    key = ech_key()
    cc = client_config(client_hello_hook=set_versions(versions))
    pair = ech_pair(cc, server_config(key), config_list(key))
    pair.pump()
    assert pair.client.handshake_complete
    assert pair.server.ech_status is ECHStatus.ACCEPTED


@pytest.mark.requirement("ECH-78")
def test_inner_without_supported_versions_is_illegal_parameter() -> None:
    cap = capture(ech_key())
    inner = cap.inner.without_extension(E.SUPPORTED_VERSIONS)
    encoded = encode_client_hello_inner(compress(inner, [E.SUPPORTED_GROUPS]), 0)
    expect_plain_alert(fresh_server(cap), reseal(cap, encoded), IllegalParameter)


@pytest.mark.requirement("ECH-78")
@pytest.mark.parametrize(
    "marker",
    [
        pytest.param(None, id="missing"),
        pytest.param(
            ECHClientHelloOuter(MTI, 1, b"", b"\x01").encode(), id="outer-type"
        ),
        pytest.param(b"\x02", id="unknown-type"),
        pytest.param(b"\x01\x00", id="inner-with-trailing-byte"),
        pytest.param(b"", id="empty"),
    ],
)
def test_inner_needs_a_well_formed_inner_extension(
    marker: bytes | None,
) -> None:
    """ECH-78: no well-formed inner ECHO in CHI ⇒ illegal_parameter.

    RFC 9849 §7.1: "checks that the message includes a well-formed
    encrypted_client_hello extension of type inner ... If either of these
    checks fails, the client-facing server MUST abort with an
    illegal_parameter alert."
    """
    cap = capture(ech_key())
    inner = cap.inner.without_extension(E.ENCRYPTED_CLIENT_HELLO)
    if marker is not None:
        inner = inner.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, marker))
    record = reseal(cap, encoded_from(inner))
    expect_plain_alert(fresh_server(cap), record, IllegalParameter)


@pytest.mark.requirement("ECH-78")
def test_check_inner_accepts_our_inner_hello() -> None:
    check_inner(capture(ech_key()).inner)


# roles (§7) ---------------------------------------------------------------------------


@pytest.mark.requirement("ECH-73")
def test_ech_server_ech_inner_from_the_network() -> None:
    """ECH-Server-ECHInner: a shared-mode server refuses the inner form."""
    cap = capture(ech_key())
    expect_plain_alert(fresh_server(cap), hello_record(cap.inner), IllegalParameter)


@pytest.mark.requirement("ECH-73")
@pytest.mark.parametrize("body", [b"\x02", b"\xff" + bytes(12)])
def test_unknown_ech_type_is_illegal_parameter(body: bytes) -> None:
    cap = capture(ech_key())
    outer = cap.outer.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body))
    expect_plain_alert(fresh_server(cap), hello_record(outer), IllegalParameter)


@pytest.mark.requirement("ECH-19")
@pytest.mark.parametrize(
    "body", [b"", b"\x00\x00\x01", b"\x00\x00\x01\x00\x01\x07\x00\x00\x00\x00"]
)
def test_malformed_outer_ech_is_decode_error(body: bytes) -> None:
    cap = capture(ech_key())
    outer = cap.outer.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body))
    expect_plain_alert(fresh_server(cap), hello_record(outer), DecodeError)


@pytest.mark.requirement("ECH-73")
def test_split_mode_backend_refuses_the_outer_form() -> None:
    """ECH-73: a split-mode backend receiving ``outer`` ⇒ illegal_parameter.

    RFC 9849 §7: "in split mode, a backend server which receives a
    ClientHello with ECHClientHello.type of outer MUST abort with an
    illegal_parameter alert". A backend has ``ech_backend`` and no keys.
    """
    cap = capture(ech_key())
    backend = ech.ServerConnection(
        ech.ServerConfig(certificates=(pki().inner_only,), ech_backend=True)
    )
    expect_plain_alert(backend, hello_record(cap.outer), IllegalParameter)


# candidate configs (§7.1) -------------------------------------------------------------


@pytest.mark.requirement("ECH-76")
def test_config_id_selects_candidates() -> None:
    """Method 1: a payload for key B under key A's config_id is not decrypted."""
    a, b = ech_key(1), ech_key(2)
    cap = capture(b)
    outer, _ = seal_outer(cap.outer, encoded_from(cap.inner), b, config_id=1)
    server = ech.ServerConnection(server_config(a, b))
    assert rejects(server, hello_record(outer)) == outer


@pytest.mark.requirement("ECH-43", "ECH-76")
@pytest.mark.parametrize("wire_id", [1, 0xEE])
def test_ech_server_trial_decryption(wire_id: int) -> None:
    """ECH-Server-TrialDecryption: with method 2 any config_id is tried."""
    a, b = ech_key(1), ech_key(2)
    cap = capture(b)
    record = reseal(cap, encoded_from(cap.inner), config_id=wire_id)
    server = ech.ServerConnection(server_config(a, b, ech_trial_decryption=True))
    assert accepts(server, record) == cap.inner


@pytest.mark.requirement("ECH-12", "ECH-76")
def test_ech_server_repeated_config_id() -> None:
    """ECH-Server-RepeatedConfigID: two keys share an id; both are tried."""
    a, b = ech_key(7), ech_key(7)
    for used in (a, b):
        pair = ech_pair(client_config(), server_config(a, b), config_list(used))
        pair.pump()
        assert pair.server.ech_status is ECHStatus.ACCEPTED
        assert pair.client.ech_status is ECHStatus.ACCEPTED


@pytest.mark.requirement("ECH-77")
def test_suite_not_listed_in_config_is_skipped() -> None:
    """ECH-77: a suite the config does not list is not used to decrypt."""
    only_mti = ech_key(3, cipher_suites=(MTI,))
    cap = capture(only_mti)
    outer, _ = seal_outer(cap.outer, encoded_from(cap.inner), only_mti, suite=CHACHA)
    server = ech.ServerConnection(server_config(only_mti))
    assert rejects(server, hello_record(outer)) == outer
    both = ech_key(3, cipher_suites=(MTI, CHACHA))
    cap = capture(both)
    record = reseal(cap, encoded_from(cap.inner), suite=CHACHA)
    assert accepts(ech.ServerConnection(server_config(both)), record) == cap.inner


@pytest.mark.requirement("ECH-81", "ECH-82")
def test_wrong_key_is_not_an_error() -> None:
    """ECH-81, ECH-82: decryption failure ⇒ continue with CHO."""
    cap = capture(ech_key(5))
    server = ech.ServerConnection(server_config(ech_key(5)))
    assert rejects(server, hello_record(cap.outer)) == cap.outer
    assert server.outer_server_name == PUBLIC_NAME


@pytest.mark.requirement("ECH-77", "ECH-81")
def test_corrupt_first_payload_falls_back_to_outer() -> None:
    cap = capture(ech_key())
    offer = ech_offer(cap.outer)
    bad = offer.with_payload(bytes([offer.payload[0] ^ 1]) + offer.payload[1:])
    outer = cap.outer.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, bad.encode()))
    assert rejects(fresh_server(cap), hello_record(outer)) == outer


@pytest.mark.requirement("ECH-33", "ECH-102")
def test_aad_covers_the_whole_outer_hello() -> None:
    """ECH-33, ECH-102: an edited CHO no longer decrypts (falls back)."""
    cap = capture(ech_key())
    outer = dataclasses.replace(
        cap.outer, cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,)
    )
    assert rejects(fresh_server(cap), hello_record(outer)) == outer


@pytest.mark.requirement("ECH-79")
def test_outer_server_name_is_not_enforced() -> None:
    """ECH-79 is a MAY: a CHO naming another host still decrypts."""
    cap = capture(ech_key())
    outer = cap.outer.with_extension(
        Extension(E.SERVER_NAME, ext.encode_server_name("other.example"))
    )
    sealed, _ = seal_outer(outer, encoded_from(cap.inner), cap.key)
    server = fresh_server(cap)
    assert accepts(server, hello_record(sealed)) == cap.inner
    assert server.outer_server_name == "other.example"


# ECH is decided first (§7.1) ----------------------------------------------------------


@pytest.mark.requirement("ECH-57", "ECH-75", "ECH-102")
def test_inner_parameters_are_negotiated_not_outer_ones() -> None:
    """ECH-75: CHI may change suites, versions and ALPN; CHI wins."""
    cap = capture(ech_key(), client_config(alpn_protocols=("h2",)))
    chacha = CipherSuite.TLS_CHACHA20_POLY1305_SHA256
    inner = dataclasses.replace(cap.inner, cipher_suites=(chacha,))
    # Only groups and signature_algorithms are taken from CHO; CHI keeps its
    # own versions and ALPN, which CHO contradicts.
    encoded = encode_client_hello_inner(
        compress(inner, [E.SUPPORTED_GROUPS, E.SIGNATURE_ALGORITHMS]), 0
    )
    outer = dataclasses.replace(
        cap.outer, cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,)
    )
    outer = outer.with_extension(
        Extension(E.SUPPORTED_VERSIONS, ext.encode_client_versions([TLS12]))
    ).with_extension(
        Extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.encode_alpn([b"evil"]))
    )
    sealed, _ = seal_outer(outer, encoded, cap.key)
    server = fresh_server(cap, alpn_protocols=("evil", "h2"))
    server.receive_data(hello_record(sealed))
    assert server.ech_status is ECHStatus.ACCEPTED
    assert server.client_hello == inner
    sh = server_hello_in(server.data_to_send())
    assert sh.cipher_suite == chacha
    assert server.alpn_protocol == "h2"
    assert server.server_name == INNER_NAME


# second ClientHello (§7.1.1) ----------------------------------------------------------


def replace_ech(
    body: Callable[[ECHClientHelloOuter], bytes],
) -> Callable[[ClientHello], ClientHello]:
    def edit(hello: ClientHello) -> ClientHello:
        offer = ech_offer(hello)
        return hello.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body(offer)))

    return edit


def flip_payload(offer: ECHClientHelloOuter) -> bytes:
    payload = offer.payload
    return offer.with_payload(payload[:-1] + bytes([payload[-1] ^ 0x40])).encode()


SECOND_HELLO_CASES = [
    pytest.param(
        replace_ech(
            lambda o: dataclasses.replace(o, config_id=(o.config_id + 1) % 256).encode()
        ),
        IllegalParameter,
        id="DifferentConfigIDSecondClientHello",
    ),
    pytest.param(
        replace_ech(lambda o: dataclasses.replace(o, cipher_suite=CHACHA).encode()),
        IllegalParameter,
        id="DifferentCipherSuite",
    ),
    pytest.param(
        replace_ech(lambda o: dataclasses.replace(o, enc=bytes(32)).encode()),
        IllegalParameter,
        id="NonEmptyEnc",
    ),
    pytest.param(
        lambda h: h.without_extension(E.ENCRYPTED_CLIENT_HELLO),
        MissingExtension,
        id="MissingECHSecondClientHello",
    ),
    pytest.param(
        replace_ech(flip_payload), DecryptError, id="CorruptSecondClientHello"
    ),
    pytest.param(
        replace_ech(lambda o: b"\x01"), IllegalParameter, id="InnerTypeSecond"
    ),
    pytest.param(replace_ech(lambda o: b"\x00\x00"), DecodeError, id="MalformedSecond"),
]


@pytest.mark.requirement("ECH-83", "ECH-101")
@pytest.mark.parametrize(("edit", "alert"), SECOND_HELLO_CASES)
def test_ech_server_second_client_hello(
    edit: Callable[[ClientHello], ClientHello], alert: type[Alert]
) -> None:
    """ECH-Server-*SecondClientHello: ECH-83 (and ECH-101: same context)."""
    key = ech_key()
    cc = hrr_client_config(compatibility_mode=False)
    pair = ech_pair(cc, hrr_server_config(key), config_list(key))
    pair.to_server()
    pair.to_client()
    assert pair.server.ech_status is ECHStatus.ACCEPTED
    data = replace_client_hello(pair.client.data_to_send(), edit)
    expect_plain_alert(pair.server, data, alert)


# backend mode (§7.2, §7.2.1) ----------------------------------------------------------


def backend(**overrides: Any) -> ech.ServerConnection:
    config = ech.ServerConfig(
        certificates=(pki().inner_only,),
        ech_backend=True,
        **overrides,
    )
    return ech.ServerConnection(config)


@pytest.mark.requirement("ECH-55", "ECH-88")
@pytest.mark.parametrize(
    ("suite", "algorithm"),
    [
        (CipherSuite.TLS_AES_128_GCM_SHA256, hashes.SHA256()),
        (CipherSuite.TLS_AES_256_GCM_SHA384, hashes.SHA384()),
    ],
    ids=["sha256", "sha384"],
)
def test_backend_confirms_in_server_hello_random(
    suite: CipherSuite, algorithm: hashes.HashAlgorithm
) -> None:
    """ECH-88, recomputed from the key schedule primitives (ECH-55)."""
    cap = capture(ech_key())
    server = backend(cipher_suites=(suite,))
    server.receive_data(hello_record(cap.inner))
    assert server.ech_status is ECHStatus.ACCEPTED
    sh = server_hello_in(server.data_to_send())
    assert sh.cipher_suite == suite
    transcript = ch_frame(cap.inner) + sh_frame(zero_tail(sh))
    expected = expected_confirmation(
        algorithm, cap.inner.random, b"ech accept confirmation", transcript
    )
    assert sh.random[24:] == expected


@pytest.mark.requirement("ECH-56", "ECH-90")
def test_backend_sends_hrr_with_confirmation() -> None:
    """ECH-90: ECHO of 8 bytes, computed over message_hash(CHI1) ‖ HRR."""
    cap = capture(ech_key(), hrr_client_config())
    server = backend(groups=(ech.NamedGroup.SECP256R1,))
    server.receive_data(hello_record(cap.inner))
    hrr = server_hello_in(server.data_to_send())
    assert hrr.is_hello_retry_request
    confirmation = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
    assert confirmation is not None
    assert len(confirmation) == 8
    algorithm = hashes.SHA256()
    zeroed = hrr.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, bytes(8)))
    digest = hashes.Hash(algorithm)
    digest.update(ch_frame(cap.inner))
    first_hash = digest.finalize()
    transcript = b"\xfe\x00\x00\x20" + first_hash + sh_frame(zeroed)
    expected = expected_confirmation(
        algorithm, cap.inner.random, b"hrr ech accept confirmation", transcript
    )
    assert confirmation == expected


@pytest.mark.requirement("ECH-89")
def test_backend_never_confirms_below_tls13() -> None:
    """ECH-89: a TLS 1.2-only CHI gets protocol_version, no ServerHello."""
    cap = capture(ech_key(), client_config(client_hello_hook=set_versions([TLS12])))
    expect_plain_alert(backend(), hello_record(cap.inner), ProtocolVersion)


@pytest.mark.requirement("ECH-74")
def test_backend_without_ech_is_a_plain_server() -> None:
    pair = ech_pair(client_config(), server_config(), None)
    pair.pump()
    assert pair.server.ech_status is ECHStatus.NOT_OFFERED
    assert pair.client.handshake_complete


# why ECH was not accepted, for operators (ECHRejectReason) ----------------------------


def test_accepted_and_plain_hellos_have_no_reason() -> None:
    cap = capture(ech_key(4))
    server = fresh_server(cap)
    accepts(server, reseal(cap, encoded_from(cap.inner)))
    assert server.ech_reason is None
    client = ech.ClientConnection(client_config(), INNER_NAME)
    client.start()
    plain = ech.ServerConnection(server_config(cap.key))
    plain.receive_data(client.data_to_send())
    assert (plain.ech_status, plain.ech_reason) == (ECHStatus.NOT_OFFERED, None)


@pytest.mark.requirement("ECH-82")
def test_grease_is_reported_as_grease_shaped() -> None:
    """Our GREASE (unknown id, HKDF-SHA256, X25519 enc) reads as grease_shaped."""
    config = client_config(ech_grease=True, random=random_avoiding_config_ids(9))
    grease = ech.ClientConnection(config, INNER_NAME)
    grease.start()
    server = ech.ServerConnection(server_config(ech_key(9)))
    server.receive_data(grease.data_to_send())
    assert server.ech_status is ECHStatus.REJECTED
    assert server.ech_reason is ECHRejectReason.GREASE_SHAPED


@pytest.mark.requirement("ECH-82")
def test_grease_on_the_served_config_id_is_rejected_as_hpke_open_failed() -> None:
    """GREASE whose random config_id is the server's (1 in 256): the key is
    tried, HPKE fails, the offer is rejected, never an error."""
    only_nine = random_avoiding_config_ids(*(i for i in range(256) if i != 9))
    grease = ech.ClientConnection(
        client_config(ech_grease=True, random=only_nine), INNER_NAME
    )
    grease.start()
    server = ech.ServerConnection(server_config(ech_key(9)))
    server.receive_data(grease.data_to_send())
    assert server.ech_status is ECHStatus.REJECTED
    assert server.ech_reason is ECHRejectReason.HPKE_OPEN_FAILED
    assert server.data_to_send()  # the handshake goes on with the outer hello


def test_unknown_config_id_with_another_kem_is_not_grease_shaped() -> None:
    """A P-256 enc (65 bytes) under an unknown id is a stale or foreign config."""
    served = ech_key(1)
    p256 = generate_ech_key(
        PUBLIC_NAME, config_id=2, kem_id=hpke.KEM.DHKEM_P256_HKDF_SHA256
    )
    pair = ech_pair(client_config(), server_config(served), config_list(p256))
    pair.to_server()
    assert pair.server.ech_reason is ECHRejectReason.UNKNOWN_CONFIG_ID


def test_wrong_key_under_a_known_id_is_hpke_open_failed() -> None:
    cap = capture(ech_key(5))
    server = ech.ServerConnection(server_config(ech_key(5)))
    rejects(server, hello_record(cap.outer))
    assert server.ech_reason is ECHRejectReason.HPKE_OPEN_FAILED


@pytest.mark.requirement("ECH-77")
def test_suite_the_config_lacks_is_unsupported_suite() -> None:
    only_mti = ech_key(3, cipher_suites=(MTI,))
    cap = capture(only_mti)
    outer, _ = seal_outer(cap.outer, encoded_from(cap.inner), only_mti, suite=CHACHA)
    server = ech.ServerConnection(server_config(only_mti))
    rejects(server, hello_record(outer))
    assert server.ech_reason is ECHRejectReason.UNSUPPORTED_SUITE


def test_server_without_keys_says_no_keys() -> None:
    cap = capture(ech_key(6))
    server = ech.ServerConnection(server_config())
    rejects(server, hello_record(cap.outer))
    assert server.ech_reason is ECHRejectReason.NO_KEYS


@pytest.mark.requirement("ECH-25")
def test_malformed_inner_is_reported_before_the_alert() -> None:
    cap = capture(ech_key())
    server = fresh_server(cap)
    expect_plain_alert(server, reseal(cap, b"\x03\x03\x00"), DecodeError)
    assert server.ech_reason is ECHRejectReason.MALFORMED_INNER
    # Decrypted, then refused: not a rejection (no fallback to the outer hello).
    assert server.ech_status is ECHStatus.OFFERED
