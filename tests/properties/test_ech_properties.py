"""Properties of ECH: reconstruction, padding, and robustness against garbage.

RFC 9849 §5.1 (EncodedClientHelloInner, Appendix A), §6.1.3 (padding), §7.1
(a server never fails on what it cannot decrypt) and §6.1.6 (retry_configs).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import ech
from ech.config import ECHConfigList, HpkeSymmetricCipherSuite
from ech.errors import DecodeError, ECHRejectedError, IllegalParameter
from ech.events import ECHRejected, ECHStatus, HandshakeComplete
from ech.extension import INNER_BODY, ECHClientHelloOuter, parse_client_hello_extension
from ech.inner import (
    compress,
    decode_client_hello_inner,
    encode_client_hello_inner,
    encode_outer_extensions,
)
from ech.testing.strategies import host_names, mutations, u8s, u16s
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello, EncryptedExtensions
from tests.helpers import plain_alert
from tests.unit.ech.ech_helpers import (
    CHACHA,
    MTI,
    Captured,
    capture,
    client_config,
    client_hello_in,
    config_list,
    ech_key,
    ech_offer,
    ech_pair,
    encoded_from,
    hello_record,
    seal_outer,
    server_config,
    server_hello_in,
)

E = ExtensionType
MARKER = Extension(E.ENCRYPTED_CLIENT_HELLO, INNER_BODY)
ext_types = st.integers(0, 0xFFFF).filter(
    lambda t: t not in (E.ECH_OUTER_EXTENSIONS, E.ENCRYPTED_CLIENT_HELLO)
)


# reconstruction -----------------------------------------------------------------------


@st.composite
def inner_and_outer(draw: st.DrawFn) -> tuple[ClientHello, ClientHello, list[int], int]:
    """A ClientHelloInner, a ClientHelloOuter holding its compressed run, the
    run's types and a padding length."""
    types = draw(st.lists(ext_types, min_size=1, max_size=10, unique=True))
    extensions = [Extension(t, draw(st.binary(max_size=24))) for t in types]
    start = draw(st.integers(0, len(extensions)))
    stop = draw(st.integers(start, len(extensions)))
    run = extensions[start:stop]
    run_types = {e.type for e in run}
    inner_extensions = (
        [MARKER, *extensions] if draw(st.booleans()) else [*extensions, MARKER]
    )
    fillers = draw(
        st.lists(
            st.builds(
                Extension,
                ext_types.filter(lambda t: t not in run_types),
                st.binary(max_size=16),
            ),
            max_size=6,
        )
    )
    outer_extensions = list(run)
    for filler in fillers:
        outer_extensions.insert(draw(st.integers(0, len(outer_extensions))), filler)
    outer_extensions.append(Extension(E.ENCRYPTED_CLIENT_HELLO, b"\x00" + bytes(12)))
    inner = ClientHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        legacy_session_id=draw(st.binary(max_size=32)),
        cipher_suites=tuple(draw(st.lists(u16s, min_size=1, max_size=5))),
        extensions=tuple(inner_extensions),
        legacy_version=draw(u16s),
        legacy_compression_methods=draw(st.binary(min_size=1, max_size=3)),
    )
    outer = ClientHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        legacy_session_id=draw(st.binary(max_size=32)),
        cipher_suites=(0x1301,),
        extensions=tuple(outer_extensions),
    )
    return inner, outer, [e.type for e in run], draw(st.integers(0, 64))


@pytest.mark.requirement("ECH-25", "ECH-27", "ECH-30")
@settings(max_examples=300)
@given(inner_and_outer())
def test_decode_encode_compress_round_trip(
    case: tuple[ClientHello, ClientHello, list[int], int],
) -> None:
    """decode(encode(compress(x)), outer) == x, with CHO's session id (ECH-30)."""
    inner, outer, run, padding = case
    encoded = encode_client_hello_inner(compress(inner, run), padding)
    decoded = decode_client_hello_inner(encoded, outer)
    assert decoded == dataclasses.replace(
        inner, legacy_session_id=outer.legacy_session_id
    )
    assert not decoded.has_extension(E.ECH_OUTER_EXTENSIONS)


POOL = [
    E.SUPPORTED_GROUPS,
    E.SIGNATURE_ALGORITHMS,
    E.SUPPORTED_VERSIONS,
    E.KEY_SHARE,
    0x1234,
]


def reference_model(outer_types: list[int], refs: list[int]) -> list[int] | None:
    """RFC 9849 §5.1 (a)-(d): referenced types present, once, in CHO order, no ECH."""
    position = -1
    for ref in refs:
        if ref == E.ENCRYPTED_CLIENT_HELLO or ref not in outer_types:
            return None
        index = outer_types.index(ref)
        if index <= position:
            return None
        position = index
    return refs


@pytest.mark.requirement("ECH-31", "ECH-32", "ECH-103")
@settings(max_examples=300)
@given(
    outer_types=st.lists(
        st.sampled_from([*POOL, E.ENCRYPTED_CLIENT_HELLO]), unique=True
    ),
    refs=st.lists(
        st.sampled_from([*POOL, E.ENCRYPTED_CLIENT_HELLO]), min_size=1, max_size=6
    ),
)
def test_outer_references_follow_the_rfc_model(
    outer_types: list[int], refs: list[int]
) -> None:
    outer = ClientHello(
        random=bytes(32),
        legacy_session_id=b"",
        cipher_suites=(0x1301,),
        extensions=(
            Extension(0x7777, b"pad"),
            *(Extension(t, t.to_bytes(2, "big") * 3) for t in outer_types),
        ),
    )
    encoded = ClientHello(
        random=bytes(32),
        legacy_session_id=b"",
        cipher_suites=(0x1301,),
        extensions=(
            Extension(E.SERVER_NAME, b"x"),
            Extension(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions(refs)),
            MARKER,
        ),
    ).encode()
    expected = reference_model(outer_types, refs)
    if expected is None:
        try:
            decode_client_hello_inner(encoded, outer)
        except IllegalParameter:
            return
        raise AssertionError(f"accepted references {refs} against {outer_types}")
    inner = decode_client_hello_inner(encoded, outer)
    assert [e.type for e in inner.extensions] == [
        E.SERVER_NAME,
        *expected,
        E.ENCRYPTED_CLIENT_HELLO,
    ]
    for extension in inner.extensions[1:-1]:
        assert extension == outer.extensions[outer_types.index(extension.type) + 1]


# padding ------------------------------------------------------------------------------


@functools.cache
def key_with_max_name(maximum_name_length: int) -> ech.keys.ECHKey:
    return ech_key(maximum_name_length=maximum_name_length)


def payload_length(key: ech.keys.ECHKey, server_name: str) -> int:
    client = ech.ClientConnection(
        client_config(), server_name, ech_configs=config_list(key)
    )
    client.start()
    return len(ech_offer(client_hello_in(client.data_to_send())).payload)


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@pytest.mark.requirement("ECH-51", "ECH-52")
@settings(max_examples=60)
@given(maximum=st.sampled_from([8, 16, 40, 100, 255]), data=st.data())
def test_inner_length_does_not_depend_on_name_length(
    maximum: int, data: st.DataObject
) -> None:
    """Every name up to maximum_name_length gives the same payload length."""
    name = data.draw(
        host_names.filter(lambda n: len(n) <= maximum and not is_ip(n)), label="name"
    )
    key = key_with_max_name(maximum)
    assert payload_length(key, name) == payload_length(key, "a")
    assert (payload_length(key, name) - 16) % 32 == 0


# robustness ---------------------------------------------------------------------------


@functools.cache
def captured() -> Captured:
    return capture(ech_key(42))


def server_survives(record: bytes) -> None:
    """A ClientHello gets an alert (queued, plaintext) or a ServerHello."""
    cap = captured()
    server = ech.ServerConnection(server_config(cap.key))
    try:
        server.receive_data(record)
    except ech.Alert as alert:
        event(type(alert).__name__)
        description = alert.description
    else:
        event(str(server.ech_status))
        assert server.ech_status in (ECHStatus.ACCEPTED, ECHStatus.REJECTED)
        assert server_hello_in(server.data_to_send())
        return
    assert server.data_to_send() == plain_alert(description)


@pytest.mark.requirement("ECH-19", "ECH-77", "ECH-81")
@settings(max_examples=300)
@given(data=st.data())
def test_garbage_ech_fields_never_crash_the_server(
    data: st.DataObject,
) -> None:
    """Garbage config_id, suite, enc or payload: an Alert or the outer handshake."""
    cap = captured()
    real = ech_offer(cap.outer)
    config_id = data.draw(st.one_of(st.just(real.config_id), u8s), label="config_id")
    suite = data.draw(
        st.one_of(
            st.sampled_from([real.cipher_suite, MTI, CHACHA]),
            st.builds(HpkeSymmetricCipherSuite, u16s, u16s),
        ),
        label="suite",
    )
    enc = data.draw(
        st.one_of(st.just(real.enc), st.binary(max_size=70), mutations(real.enc)),
        label="enc",
    )
    payload = data.draw(
        st.one_of(
            st.just(real.payload), st.binary(max_size=300), mutations(real.payload)
        ),
        label="payload",
    )
    body = ECHClientHelloOuter(suite, config_id, enc, payload).encode()
    if data.draw(st.booleans(), label="raw body"):
        body = data.draw(
            st.one_of(st.binary(max_size=80), mutations(body)), label="body"
        )
    outer = cap.outer.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body))
    server_survives(hello_record(outer))


@pytest.mark.requirement("ECH-25", "ECH-29", "ECH-31", "ECH-78")
@settings(max_examples=300)
@given(data=st.data())
def test_sealed_garbage_inner_never_crashes_the_server(
    data: st.DataObject,
) -> None:
    """Sealed, malformed EncodedClientHelloInner: an Alert, or it works."""
    cap = captured()
    real = encoded_from(cap.inner, 7)
    plaintext = data.draw(
        st.one_of(
            st.binary(max_size=300), mutations(real), mutations(real), mutations(real)
        ),
        label="plaintext",
    )
    outer, _ = seal_outer(cap.outer, plaintext, cap.key)
    server_survives(hello_record(outer))


VALID_RETRY_CONFIGS = config_list(
    ech_key(1), ech_key(2, maximum_name_length=30)
).encode()


@pytest.mark.requirement("ECH-61", "ECH-71")
@settings(max_examples=100)
@given(
    body=st.one_of(st.binary(max_size=120), mutations(VALID_RETRY_CONFIGS)),
    grease=st.booleans(),
)
def test_garbage_retry_configs_never_crash_the_client(
    body: bytes, grease: bool
) -> None:
    """EE retry_configs garbage: decode_error, or a parsed (or ignored) list."""

    def inject(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body))

    sc = server_config(ech_key(9), encrypted_extensions_hook=inject)
    configs = None if grease else config_list(ech_key(9))
    pair = ech_pair(client_config(ech_grease=grease), sc, configs)
    pair.to_server()
    try:
        events = pair.client.receive_data(pair.server.data_to_send())
    except DecodeError:
        return
    parsed = ECHConfigList.parse(body)
    if grease:
        assert any(isinstance(e, HandshakeComplete) for e in events)
        assert pair.client.retry_configs is None
    else:
        (event,) = [e for e in events if isinstance(e, ECHRejected)]
        assert event.retry_configs == parsed
        ECHRejectedError(event.retry_configs, event.public_name).can_retry  # noqa: B018


@pytest.mark.requirement("ECH-19", "ECH-33")
@given(
    suite=st.builds(HpkeSymmetricCipherSuite, u16s, u16s),
    config_id=u8s,
    enc=st.binary(max_size=70),
    payload=st.binary(min_size=1, max_size=300),
)
def test_offer_parses_back_and_zeroes_exactly_its_payload(
    suite: HpkeSymmetricCipherSuite, config_id: int, enc: bytes, payload: bytes
) -> None:
    offer = ECHClientHelloOuter(suite, config_id, enc, payload)
    assert parse_client_hello_extension(offer.encode()) == offer
    zeroed = offer.encode_with_payload_zeroed()
    assert zeroed == offer.with_payload(bytes(len(payload))).encode()
    assert len(zeroed) == len(offer.encode())
