"""The public strategies (``ech.testing.strategies``) are labelled truthfully.

Valid draws round-trip through our codec; broken draws are refused by our
decoders with exactly the alert the draw names; tampered ClientHelloOuters
never decrypt. Users rely on these labels to judge other implementations,
so our own decoders are the reference here (RFC 9849 §4, §5.1, §7.1;
RFC 8446 §3, §4.1).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import ech
from ech.config import ECHConfigList
from ech.errors import Alert
from ech.extension import parse_client_hello_extension
from ech.inner import decode_client_hello_inner
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.server.ech import check_inner, index_keys, open_client_hello
from ech.testing import Drawn, EncodedClientHelloInner, SealedClientHello
from ech.testing import strategies as s
from ech.testing.drawn import client_hello_record
from ech.tls.enums import AlertDescription, ExtensionType, HandshakeType, NamedGroup
from ech.tls.extensions import check_unique
from ech.tls.messages import ClientHello, ServerHello
from ech.tls.wire import Reader, encode_opaque

E = ExtensionType


def refused_with(decode: Callable[[bytes], object], drawn: Drawn[object]) -> None:
    """``decode(drawn.wire)`` raises an Alert carrying ``drawn.alert``."""
    assert drawn.alert is not None
    event(drawn.mutation)
    with pytest.raises(Alert) as raised:
        decode(drawn.wire)
    assert raised.value.description == drawn.alert, (drawn.mutation, raised.value)


def handshake_body(wire: bytes, msg_type: int) -> bytes:
    """The body of one whole handshake message (RFC 8446 §4)."""
    r = Reader(wire)
    assert r.u8() == msg_type
    body = r.opaque(3)
    r.expect_end()
    return body


# ECHConfig, ECHConfigList ------------------------------------------------------------


def decode_config(wire: bytes) -> object:
    return ECHConfigList.parse(encode_opaque(2, wire)).configs


@given(s.ech_configs())
def test_valid_ech_configs_round_trip(drawn: Drawn[ech.config.ECHConfig]) -> None:
    assert decode_config(drawn.wire) == (drawn.value,)
    assert drawn.valid


@given(s.ech_configs(valid=False))
def test_broken_ech_configs_are_decode_errors(
    drawn: Drawn[ech.config.ECHConfig],
) -> None:
    refused_with(decode_config, drawn)


@given(s.ech_config_lists())
def test_valid_ech_config_lists_round_trip(drawn: Drawn[ECHConfigList]) -> None:
    parsed = ECHConfigList.parse(drawn.wire)
    assert parsed == drawn.value
    assert parsed.encode() == drawn.wire


@given(s.ech_config_lists(valid=False))
def test_broken_ech_config_lists_are_decode_errors(
    drawn: Drawn[ECHConfigList],
) -> None:
    refused_with(ECHConfigList.parse, drawn)


# ClientHelloInner, EncodedClientHelloInner --------------------------------------------


def decode_inner(wire: bytes) -> ClientHello:
    """What a server checks of a decrypted ClientHelloInner (§7.1, ECH-78)."""
    hello = ClientHello.parse(handshake_body(wire, HandshakeType.CLIENT_HELLO))
    check_unique(hello.extensions)
    check_inner(hello)
    return hello


@given(s.client_hello_inners())
def test_valid_client_hello_inners_round_trip(drawn: Drawn[ClientHello]) -> None:
    assert decode_inner(drawn.wire) == drawn.value


@given(s.client_hello_inners(valid=False))
def test_broken_client_hello_inners_are_refused(drawn: Drawn[ClientHello]) -> None:
    refused_with(decode_inner, drawn)


@given(s.encoded_client_hello_inners())
def test_valid_encoded_inners_rebuild_the_inner_hello(
    drawn: Drawn[EncodedClientHelloInner],
) -> None:
    value = drawn.value
    rebuilt = decode_client_hello_inner(drawn.wire, value.client_hello_outer)
    assert rebuilt == value.client_hello_inner
    check_inner(rebuilt)


@pytest.mark.requirement("ECH-29", "ECH-31")
@given(s.encoded_client_hello_inners(valid=False))
def test_broken_encoded_inners_are_refused(
    drawn: Drawn[EncodedClientHelloInner],
) -> None:
    outer = drawn.value.client_hello_outer
    refused_with(lambda wire: decode_client_hello_inner(wire, outer), drawn)


# ClientHelloOuter ---------------------------------------------------------------------


@functools.cache
def key() -> ECHKey:
    return generate_ech_key("public.example", config_id=5, maximum_name_length=24)


@functools.cache
def server_config() -> ech.ServerConfig:
    ca = TestCA.create("strategies CA", key_type="ed25519")
    leaf = ca.issue("public.example", key_type="ed25519")
    return ech.ServerConfig(certificates=(leaf,), ech_keys=(key(),))


def open_outer(wire: bytes) -> ClientHello | None:
    """The server's ECH step (§7.1): ClientHelloInner, or None if not for us."""
    outer = ClientHello.parse(handshake_body(wire, HandshakeType.CLIENT_HELLO))
    check_unique(outer.extensions)
    data = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
    assert data is not None
    offer = parse_client_hello_extension(data)
    assert offer is not None
    opened = open_client_hello(outer, offer, index_keys([key()]))
    return opened[0] if opened is not None else None


@given(st.data())
def test_valid_client_hello_outers_decrypt_to_their_inner(data: st.DataObject) -> None:
    drawn = data.draw(s.client_hello_outers(key().config))
    assert open_outer(drawn.wire) == drawn.value.inner
    outer = drawn.value.outer
    assert outer.extension(E.SERVER_NAME) == ech.tls.extensions.encode_server_name(
        "public.example"
    )


@given(st.data())
def test_tampered_client_hello_outers_never_decrypt(data: st.DataObject) -> None:
    drawn: Drawn[SealedClientHello] = data.draw(
        s.client_hello_outers(key().config, tampered=True)
    )
    assert drawn.tampered
    assert not drawn.valid
    event(drawn.mutation)
    assert open_outer(drawn.wire) is None


@given(st.data())
def test_broken_client_hello_outers_are_refused_by_the_server(
    data: st.DataObject,
) -> None:
    """Fed to ServerConnection as a record: the alert named, queued and raised."""
    drawn: Drawn[SealedClientHello] = data.draw(
        s.client_hello_outers(key().config, valid=False)
    )
    server = ech.ServerConnection(server_config())
    refused_with(lambda wire: server.receive_data(client_hello_record(wire)), drawn)
    description = drawn.alert
    assert description is not None
    assert server.data_to_send() == bytes((21, 3, 3, 0, 2, 2, description))


# ServerHello, HelloRetryRequest -------------------------------------------------------


def started_client(*, grease: bool = False) -> tuple[ech.ClientConnection, ClientHello]:
    config = ech.ClientConfig(
        verify_certificates=False,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
        key_share_groups=(NamedGroup.X25519,),
        ech_grease=grease,
    )
    client = ech.ClientConnection(config, "example.test")
    client.start()
    flight = client.data_to_send()
    r = Reader(flight)
    r.u8(), r.u16()
    hello = ClientHello.parse(handshake_body(r.opaque(2), HandshakeType.CLIENT_HELLO))
    return client, hello


def feed(client: ech.ClientConnection, wire: bytes) -> None:
    client.receive_data(client_hello_record(wire))


@given(st.data())
def test_valid_server_hellos_round_trip_and_are_taken(data: st.DataObject) -> None:
    client, hello = started_client()
    drawn = data.draw(s.server_hellos(answering=hello))
    body = handshake_body(drawn.wire, HandshakeType.SERVER_HELLO)
    assert ServerHello.parse(body) == drawn.value
    assert not drawn.value.is_hello_retry_request
    feed(client, drawn.wire)  # no alert: the client waits for EncryptedExtensions


@given(st.data())
def test_broken_server_hellos_are_refused_by_the_client(data: st.DataObject) -> None:
    client, hello = started_client()
    drawn = data.draw(s.server_hellos(answering=hello, valid=False))
    refused_with(lambda wire: feed(client, wire), drawn)


@given(st.data())
def test_valid_hello_retry_requests_round_trip_and_are_taken(
    data: st.DataObject,
) -> None:
    client, hello = started_client(grease=True)
    drawn = data.draw(s.hello_retry_requests(answering=hello))
    body = handshake_body(drawn.wire, HandshakeType.SERVER_HELLO)
    assert ServerHello.parse(body) == drawn.value
    assert drawn.value.is_hello_retry_request
    feed(client, drawn.wire)  # the client answers with its second ClientHello
    assert client.data_to_send()


@given(st.data())
def test_broken_hello_retry_requests_are_refused_by_the_client(
    data: st.DataObject,
) -> None:
    client, hello = started_client(grease=True)
    drawn = data.draw(s.hello_retry_requests(answering=hello, valid=False))
    refused_with(lambda wire: feed(client, wire), drawn)


@given(s.server_hellos(), s.hello_retry_requests())
def test_unanchored_server_hellos_round_trip(
    sh: Drawn[ServerHello], hrr: Drawn[ServerHello]
) -> None:
    for drawn in (sh, hrr):
        body = handshake_body(drawn.wire, HandshakeType.SERVER_HELLO)
        assert ServerHello.parse(body) == drawn.value


# the package --------------------------------------------------------------------------


def test_import_ech_needs_no_hypothesis() -> None:
    """``import ech`` and ``ech.testing`` work with hypothesis unimportable."""
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import ech, ech.testing, ech.testing.drawn, ech.fuzz\n"
        "try:\n    import ech.testing.strategies\n"
        "except ImportError:\n    print('strategies need hypothesis')\n"
        "sys.exit(ech.fuzz.cli.main(['127.0.0.1:1', '--sni', 'a.example']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "strategies need hypothesis"
    # ech fuzz says what to install instead of failing on an import.
    assert result.returncode == 2
    assert "pip install 'tls-ech[testing]'" in result.stderr


def test_alerts_named_are_alerts() -> None:
    named = {d[1] for d in s.SERVER_HELLO_BREAKS} | {d[1] for d in s.HRR_BREAKS}
    assert named <= set(AlertDescription)
