"""The client's ECH offer: ClientHelloInner, ClientHelloOuter and GREASE (RFC 9849 §6).

Each test starts a real :class:`ech.ClientConnection`, takes its first
flight and decrypts it with the test's own copy of the ECH key.
"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

import ech
from ech import hpke
from ech.client.ech import (
    COMPRESSED_EXTENSIONS,
    GREASE_SUITE,
    ECHOffer,
    grease_extension,
    inner_marker,
    select_config,
)
from ech.config import ECHConfig, ECHConfigList
from ech.events import ECHStatus
from ech.extension import INNER_BODY
from ech.inner import decode_outer_extensions
from ech.server.ech import client_hello_outer_aad, open_second_client_hello
from ech.tls import extensions as ext
from ech.tls.enums import TLS13, ExtensionType
from ech.tls.extensions import Extension, OfferedPsks
from ech.tls.messages import ClientHello
from ech.tls.wire import Reader
from tests.helpers import DeterministicRandom
from tests.unit.ech.ech_helpers import (
    CHACHA,
    INNER_NAME,
    MTI,
    PUBLIC_NAME,
    capture,
    client_config,
    client_hello_in,
    config_list,
    decrypt_encoded_inner,
    ech_key,
    ech_offer,
    open_outer,
    server_config,
    session_ticket,
)

E = ExtensionType


def sni(hello: ClientHello) -> str | None:
    data = hello.extension(E.SERVER_NAME)
    return ext.decode_server_name(data) if data is not None else None


def first_hello(
    cc: ech.ClientConfig,
    configs: ECHConfigList | None,
    server_name: str | None = INNER_NAME,
    session: ech.SessionTicket | None = None,
) -> tuple[ech.ClientConnection, ClientHello]:
    client = ech.ClientConnection(cc, server_name, session=session, ech_configs=configs)
    client.start()
    return client, client_hello_in(client.data_to_send())


def with_public_name(key_config: ECHConfig, name: bytes) -> ECHConfig:
    contents = key_config.contents
    assert contents is not None
    return ECHConfig.from_contents(dataclasses.replace(contents, public_name=name))


def with_kem(key_config: ECHConfig, kem_id: int) -> ECHConfig:
    contents = key_config.contents
    assert contents is not None
    return ECHConfig.from_contents(dataclasses.replace(contents, kem_id=kem_id))


# config selection ---------------------------------------------------------------------


@pytest.mark.requirement("ECH-13", "ECH-14")
def test_skip_invalid_public_name() -> None:
    """ECH-Client-SkipInvalidPublicName: ECH-13, ECH-14."""
    good = ech_key(9, public_name="good.example")
    bad_key = ech_key(8)
    for bad_name in (b"192.0.2.1", b"example.0x1f", b"-bad-.example", b"a..b"):
        configs = ECHConfigList(
            (with_public_name(bad_key.config, bad_name), good.config)
        )
        assert select_config(configs) == good.config
        client, outer = first_hello(client_config(), configs)
        assert client.ech_status is ECHStatus.OFFERED
        assert ech_offer(outer).config_id == 9
        assert sni(outer) == "good.example"


@pytest.mark.requirement("ECH-4", "ECH-7")
def test_select_config_takes_the_first_usable_in_server_order() -> None:
    first, second = ech_key(1), ech_key(2)
    unsupported = with_kem(ech_key(3).config, 0x9999)
    configs = ECHConfigList((unsupported, first.config, second.config))
    assert select_config(configs) == first.config


@pytest.mark.requirement("ECH-7", "ECH-34")
def test_no_supported_configs_sends_grease() -> None:
    """ECH-Client-NoSupportedConfigs: fall back to GREASE, keep the real SNI."""
    configs = ECHConfigList((with_kem(ech_key(3).config, 0x9999),))
    client, hello = first_hello(client_config(), configs)
    assert client.ech_status is ECHStatus.GREASE
    offer = ech_offer(hello)
    assert offer.cipher_suite == GREASE_SUITE
    assert sni(hello) == INNER_NAME
    assert PUBLIC_NAME.encode() not in hello.encode()


@pytest.mark.requirement("ECH-34")
def test_compatible_config_sends_real_ech() -> None:
    key = ech_key()
    cap = capture(key)
    assert cap.client.ech_status is ECHStatus.OFFERED
    assert sni(cap.inner) == INNER_NAME


@pytest.mark.requirement("ECH-7", "ECH-21", "ECH-43")
def test_cipher_suite_and_config_id_come_from_the_config() -> None:
    """ECH-21: a suite the config lists; its own config_id (ECH-43)."""
    key = ech_key(0x5A, cipher_suites=(CHACHA,))
    cap = capture(key)
    offer = ech_offer(cap.outer)
    assert offer.cipher_suite == CHACHA
    assert offer.config_id == 0x5A
    assert len(offer.enc) == hpke.enc_length(hpke.KEM.DHKEM_X25519_HKDF_SHA256)


@pytest.mark.requirement("ECH-7")
def test_unsupported_suite_in_config_is_never_used() -> None:
    key = ech_key(4)
    contents = key.config.contents
    assert contents is not None
    bogus = dataclasses.replace(contents.cipher_suites[0], kdf_id=0x7777)
    config = ECHConfig.from_contents(
        dataclasses.replace(contents, cipher_suites=(bogus, CHACHA))
    )
    _, hello = first_hello(client_config(), ECHConfigList((config,)))
    assert ech_offer(hello).cipher_suite == CHACHA


# ClientHelloInner ---------------------------------------------------------------------


@pytest.mark.requirement("ECH-20", "ECH-36")
def test_inner_carries_the_inner_extension() -> None:
    """ECH-20, ECH-36: outer variant in CHO, inner variant in CHI."""
    cap = capture(ech_key())
    assert cap.inner.extension(E.ENCRYPTED_CLIENT_HELLO) == INNER_BODY
    assert ech_offer(cap.outer).payload  # the outer form


@pytest.mark.requirement("ECH-35")
def test_inner_offers_only_tls13() -> None:
    """ECH-35: no TLS 1.2 or below, no TLS 1.2 resumption in CHI."""
    cap = capture(ech_key())
    versions = cap.inner.extension(E.SUPPORTED_VERSIONS)
    assert versions is not None
    assert ext.decode_client_versions(versions) == (TLS13,)
    assert not cap.inner.has_extension(E.SESSION_TICKET)
    assert not cap.inner.has_extension(E.RENEGOTIATION_INFO)


@pytest.mark.requirement("ECH-36")
def test_compressed_extensions_are_consecutive_in_inner() -> None:
    cap = capture(ech_key(), client_config(alpn_protocols=("h2",)))
    positions = [
        i for i, e in enumerate(cap.inner.extensions) if e.type in COMPRESSED_EXTENSIONS
    ]
    assert len(positions) >= 5
    assert positions == list(range(positions[0], positions[0] + len(positions)))


@pytest.mark.requirement("ECH-25")
def test_encoded_inner_has_no_header_and_empty_session_id() -> None:
    cap = capture(ech_key())
    assert cap.inner.legacy_session_id  # compatibility mode
    encoded = decrypt_encoded_inner(cap.key, cap.outer)
    assert encoded[:2] == b"\x03\x03"  # legacy_version: no handshake header
    assert encoded[34] == 0  # legacy_session_id<0..32> is empty
    hello_part = ClientHello.read(Reader(encoded))
    assert not any(encoded[len(hello_part.encode()) :])


@pytest.mark.requirement("ECH-37")
def test_hpke_info_is_the_single_chosen_config() -> None:
    """ECH-37: info = "tls ech" ‖ 0 ‖ ECHConfig, not the whole list."""
    key, other = ech_key(1), ech_key(2)
    configs = config_list(key, other)
    _, outer = first_hello(client_config(), configs)
    decrypt_encoded_inner(key, outer)  # info from key.config.raw alone
    offer = ech_offer(outer)
    context = hpke.setup_base_recipient(
        hpke.KEM.DHKEM_X25519_HKDF_SHA256,
        offer.cipher_suite.kdf_id,
        offer.cipher_suite.aead_id,
        offer.enc,
        key.private_key,
        b"tls ech\x00" + configs.encode(),
    )
    with pytest.raises(hpke.HPKEError):
        context.open(client_hello_outer_aad(outer, offer), offer.payload)


# ClientHelloOuter ---------------------------------------------------------------------


@pytest.mark.requirement("ECH-38")
def test_outer_offers_tls13() -> None:
    cap = capture(ech_key())
    versions = cap.outer.extension(E.SUPPORTED_VERSIONS)
    assert versions is not None
    assert TLS13 in ext.decode_client_versions(versions)


@pytest.mark.requirement("ECH-27", "ECH-39")
def test_compressed_extensions_in_outer_keep_their_order() -> None:
    """ECH-27, ECH-39: referenced extensions are in CHO, same relative order."""
    cap = capture(ech_key(), client_config(alpn_protocols=("h2", "http/1.1")))
    encoded = decrypt_encoded_inner(cap.key, cap.outer)
    compressed = ClientHello.read(Reader(encoded))
    (refs_ext,) = [e for e in compressed.extensions if e.type == E.ECH_OUTER_EXTENSIONS]
    refs = decode_outer_extensions(refs_ext.data)
    # Every compressible extension but QUIC's, which only QUIC hellos carry.
    assert set(refs) == set(COMPRESSED_EXTENSIONS) - {E.QUIC_TRANSPORT_PARAMETERS}
    outer_types = [e.type for e in cap.outer.extensions]
    positions = [outer_types.index(t) for t in refs]
    assert positions == sorted(positions)
    for t in refs:
        assert cap.outer.extension(t) == cap.inner.extension(t)


@pytest.mark.requirement("ECH-28")
def test_outer_extensions_never_in_outer_or_inner() -> None:
    cap = capture(ech_key())
    encoded = decrypt_encoded_inner(cap.key, cap.outer)
    compressed = ClientHello.read(Reader(encoded))
    assert [e.type for e in compressed.extensions].count(E.ECH_OUTER_EXTENSIONS) == 1
    assert not cap.outer.has_extension(E.ECH_OUTER_EXTENSIONS)
    assert not cap.inner.has_extension(E.ECH_OUTER_EXTENSIONS)


@pytest.mark.requirement("ECH-40")
@pytest.mark.parametrize("compatibility_mode", [True, False])
def test_outer_copies_legacy_session_id(compatibility_mode: bool) -> None:
    cap = capture(ech_key(), client_config(compatibility_mode=compatibility_mode))
    assert cap.outer.legacy_session_id == cap.inner.legacy_session_id
    assert bool(cap.outer.legacy_session_id) is compatibility_mode


@pytest.mark.requirement("ECH-41")
def test_outer_random_differs_from_inner_random() -> None:
    cap = capture(ech_key())
    assert cap.outer.random != cap.inner.random
    assert cap.outer.random != capture(cap.key).outer.random


@pytest.mark.requirement("ECH-42", "ECH-47")
def test_outer_server_name_is_public_name() -> None:
    """ECH-42; ECH-47: the true name appears nowhere in CHO."""
    cap = capture(ech_key())
    assert sni(cap.outer) == PUBLIC_NAME
    assert sni(cap.inner) == INNER_NAME
    assert INNER_NAME.encode() not in cap.outer.encode()


@pytest.mark.requirement("ECH-42", "ECH-51")
def test_outer_server_name_added_when_inner_has_none() -> None:
    """An IP address is not sent as SNI; CHO still names public_name."""
    cap = capture(ech_key(), server_name="192.0.2.1")
    assert sni(cap.inner) is None
    assert sni(cap.outer) == PUBLIC_NAME


@pytest.mark.requirement("ECH-48")
def test_ech_is_the_last_outer_extension() -> None:
    """ECH-48: ECH is computed last; payload = EncodedClientHelloInner + tag."""
    cap = capture(ech_key())
    assert cap.outer.extensions[-1].type == E.ENCRYPTED_CLIENT_HELLO
    encoded = decrypt_encoded_inner(cap.key, cap.outer)
    assert len(ech_offer(cap.outer).payload) == len(encoded) + 16


@pytest.mark.requirement("ECH-46")
def test_early_data_is_copied_to_outer() -> None:
    """ECH-46. Our client sends no 0-RTT; a hook adds early_data to CHI."""

    def add_early_data(hello: ClientHello) -> ClientHello:
        return hello.with_extension(Extension(E.EARLY_DATA, b""))

    cap = capture(ech_key(), client_config(client_hello_hook=add_early_data))
    assert cap.inner.extension(E.EARLY_DATA) == b""
    assert cap.outer.extension(E.EARLY_DATA) == b""


# GREASE PSK (§6.1.2) ------------------------------------------------------------------


@pytest.mark.requirement("ECH-44", "ECH-45", "ECH-48")
def test_outer_carries_a_grease_psk_shaped_like_the_real_one() -> None:
    """ECH-44, ECH-45: same identity/binder lengths, other bytes, modes copied."""
    key = ech_key(11)
    ticket = session_ticket(server_config(key), config_list(key))
    cap = capture(key, session=ticket)
    inner_psk = cap.inner.extension(E.PRE_SHARED_KEY)
    outer_psk = cap.outer.extension(E.PRE_SHARED_KEY)
    assert inner_psk is not None
    assert outer_psk is not None
    real, grease = OfferedPsks.parse(inner_psk), OfferedPsks.parse(outer_psk)
    assert real.identities[0].identity == ticket.ticket
    assert [len(i.identity) for i in grease.identities] == [
        len(i.identity) for i in real.identities
    ]
    assert [len(b) for b in grease.binders] == [len(b) for b in real.binders]
    for g, r in zip(grease.identities, real.identities, strict=True):
        assert g.identity != r.identity
        assert g.obfuscated_ticket_age != r.obfuscated_ticket_age
    for gb, rb in zip(grease.binders, real.binders, strict=True):
        assert gb != rb
    assert ticket.ticket not in cap.outer.encode()
    modes = cap.inner.extension(E.PSK_KEY_EXCHANGE_MODES)
    assert modes is not None
    assert cap.outer.extension(E.PSK_KEY_EXCHANGE_MODES) == modes
    # pre_shared_key stays last in both hellos, ECH just before it (ECH-48).
    assert [e.type for e in cap.outer.extensions[-2:]] == [
        E.ENCRYPTED_CLIENT_HELLO,
        E.PRE_SHARED_KEY,
    ]
    assert cap.inner.extensions[-1].type == E.PRE_SHARED_KEY


# padding (§6.1.3) ---------------------------------------------------------------------


def spec_padding(hello_length: int, name_length: int | None, max_name: int) -> int:
    """RFC 9849 §6.1.3, restated independently of ech.inner.padding_length."""
    name_pad = max_name + 9 if name_length is None else max(0, max_name - name_length)
    so_far = hello_length + name_pad
    return name_pad + 31 - ((so_far - 1) % 32)


@pytest.mark.requirement("ECH-51", "ECH-52")
@pytest.mark.parametrize(
    "server_name",
    [
        pytest.param("a.test", id="short"),
        pytest.param("x" * 35 + ".test", id="exactly-L"),
        pytest.param("y" * 60 + ".example.test", id="longer-than-L"),
        pytest.param("192.0.2.1", id="no-sni"),
    ],
)
def test_padding_is_exact(server_name: str) -> None:
    """ECH-51 (pad name to L, or L + 9 without SNI), ECH-52 (round to 32)."""
    max_name = 40
    cap = capture(ech_key(maximum_name_length=max_name), server_name=server_name)
    encoded = decrypt_encoded_inner(cap.key, cap.outer)
    hello_length = len(ClientHello.read(Reader(encoded)).encode())
    name = sni(cap.inner)
    expected = spec_padding(hello_length, None if name is None else len(name), max_name)
    assert len(encoded) - hello_length == expected
    assert len(encoded) % 32 == 0


@pytest.mark.requirement("ECH-51")
def test_payload_length_does_not_depend_on_short_names() -> None:
    key = ech_key(maximum_name_length=64)
    lengths = {
        len(ech_offer(capture(key, server_name=name).outer).payload)
        for name in ("a.test", "mid-sized.example.test", "z" * 59 + ".test")
    }
    assert len(lengths) == 1


@pytest.mark.requirement("ECH-50")
def test_payload_length_does_not_depend_on_alpn() -> None:
    """ECH-50: ALPN is compressed (sent in CHO), so it adds no inner length."""
    key = ech_key()
    lengths = {
        len(ech_offer(capture(key, client_config(alpn_protocols=alpn)).outer).payload)
        for alpn in ((), ("h2",), ("h2", "http/1.1", "a-long-protocol-name/9.9"))
    }
    assert len(lengths) == 1


# the HPKE context after HelloRetryRequest (§6.1.5) ------------------------------------


@pytest.mark.requirement("ECH-21", "ECH-58", "ECH-101")
def test_second_seal_reuses_the_context_with_empty_enc() -> None:
    """ECH-21 (enc empty in CH2), ECH-58 and ECH-101 (same HPKE context)."""
    cap = capture(ech_key())
    offer = ECHOffer.start(cap.key.config, DeterministicRandom(b"offer"))
    outer1 = offer.seal(cap.inner, DeterministicRandom(b"1"))
    inner2 = cap.inner.with_extension(Extension(E.COOKIE, b"\x00\x02hi"))
    outer2 = offer.seal(inner2, DeterministicRandom(b"2"))
    first, second = ech_offer(outer1), ech_offer(outer2)
    assert len(first.enc) == 32
    assert second.enc == b""
    assert (second.cipher_suite, second.config_id) == (
        first.cipher_suite,
        first.config_id,
    )
    assert outer2.random == outer1.random
    inner1_opened, accepted = open_outer(cap.key, outer1)
    assert inner1_opened == cap.inner
    assert open_second_client_hello(outer2, accepted) == inner2
    # A fresh context (sequence number 0) cannot open the second payload.
    contents = cap.key.config.contents
    assert contents is not None
    fresh = hpke.setup_base_recipient(
        contents.kem_id,
        MTI.kdf_id,
        MTI.aead_id,
        first.enc,
        cap.key.private_key,
        cap.key.config.hpke_info(),
    )
    with pytest.raises(hpke.HPKEError):
        fresh.open(client_hello_outer_aad(outer2, second), second.payload)


# GREASE (§6.2.1) ----------------------------------------------------------------------


def grease_hello(
    cc: ech.ClientConfig | None = None, session: ech.SessionTicket | None = None
) -> tuple[ech.ClientConnection, ClientHello]:
    return first_hello(cc or client_config(ech_grease=True), None, session=session)


@pytest.mark.requirement("ECH-69")
def test_grease_extension_shape() -> None:
    """ECH-Client-GREASE: MTI suite, a valid X25519 enc, outer form."""
    client, hello = grease_hello()
    assert client.ech_status is ECHStatus.GREASE
    offer = ech_offer(hello)
    assert offer.cipher_suite == MTI
    assert len(offer.enc) == 32
    x25519.X25519PublicKey.from_public_bytes(offer.enc)
    assert not hello.has_extension(E.ECH_OUTER_EXTENSIONS)
    assert hello.extension(E.ENCRYPTED_CLIENT_HELLO) != INNER_BODY


@pytest.mark.requirement("ECH-69")
def test_grease_config_id_and_payload_are_random() -> None:
    offers = [
        ech_offer(
            grease_hello(
                client_config(ech_grease=True, random=DeterministicRandom(bytes([i])))
            )[1]
        )
        for i in range(8)
    ]
    assert len({o.config_id for o in offers}) > 1
    assert len({o.payload for o in offers}) == len(offers)
    assert len({o.enc for o in offers}) == len(offers)


@pytest.mark.requirement("ECH-69", "ECH-99")
def test_grease_payload_length_tracks_a_real_offer() -> None:
    """ECH-Client-GREASE: the payload is as long as a real offer's for the hello."""
    _, grease = grease_hello()
    real = capture(ech_key(maximum_name_length=0)).outer
    assert len(ech_offer(grease).payload) == len(ech_offer(real).payload)
    # Same extension code points in the same order (ECH-99).
    assert [e.type for e in grease.extensions] == [e.type for e in real.extensions]


@pytest.mark.requirement("ECH-69")
def test_grease_extension_function_matches_real_encoding_length() -> None:
    cap = capture(ech_key(maximum_name_length=0))
    hello_without_marker = cap.inner.without_extension(E.ENCRYPTED_CLIENT_HELLO)
    grease = grease_extension(hello_without_marker, DeterministicRandom(b"g"))
    assert len(grease.data) == len(cap.outer.extension(E.ENCRYPTED_CLIENT_HELLO) or b"")
    assert inner_marker().data == INNER_BODY


@pytest.mark.requirement("ECH-69", "ECH-99")
def test_grease_payload_length_tracks_a_real_offer_when_resuming() -> None:
    """ECH-Client-GREASE with a PSK: a real CHI would carry pre_shared_key.

    RFC 9849 §6.2.1: the payload is as long as the EncodedClientHelloInner
    the client would send; with a ticket that includes pre_shared_key.
    """
    ticket = session_ticket(server_config())
    _, grease = grease_hello(session=ticket)
    key = ech_key(maximum_name_length=0)
    _, real = first_hello(client_config(), config_list(key), session=ticket)
    grease_length = len(ech_offer(grease).payload)
    real_length = len(ech_offer(real).payload)
    assert grease_length == real_length


@pytest.mark.requirement("ECH-72")
def test_grease_client_may_resume_a_non_ech_session() -> None:
    """ECH-72: GREASE is not offering ECH; the real PSK is sent."""
    ticket = session_ticket(server_config())
    _, hello = grease_hello(session=ticket)
    psk = hello.extension(E.PRE_SHARED_KEY)
    assert psk is not None
    assert OfferedPsks.parse(psk).identities[0].identity == ticket.ticket
    assert hello.extensions[-1].type == E.PRE_SHARED_KEY
    assert hello.extensions[-2].type == E.ENCRYPTED_CLIENT_HELLO


@pytest.mark.requirement("ECH-74")
def test_no_ech_without_configs_or_grease() -> None:
    client, hello = first_hello(client_config(), None)
    assert client.ech_status is ECHStatus.NOT_OFFERED
    assert not hello.has_extension(E.ENCRYPTED_CLIENT_HELLO)
