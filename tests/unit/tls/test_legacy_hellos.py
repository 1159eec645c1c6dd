"""Hellos of earlier TLS versions, which end before their extension block.

RFC 8446 §4.1.2 warns that a TLS 1.3 server "might receive ClientHello
messages without an extensions field from prior versions of TLS"; such a
hello offers no TLS 1.3, so a TLS 1.3-only server answers protocol_version
(RFC 8446 §4.2.1, §6.2), as Go 1.27 does. Ours said decode_error until
``ech fuzz`` against Go showed the difference (a truncated-hello draw cut
exactly there). The same holds for a client and a TLS 1.2 ServerHello.
"""

from __future__ import annotations

import dataclasses

import pytest

import ech
from ech.errors import ProtocolVersion
from ech.tls.enums import AlertDescription, HandshakeType
from ech.tls.messages import ClientHello, ServerHello
from ech.tls.wire import frame_handshake
from tests.helpers import build_record, parse_records, plain_alert


def tls12_client_hello() -> bytes:
    hello = ClientHello(
        random=bytes(range(32)),
        legacy_session_id=b"",
        cipher_suites=(0xC02F, 0x1301),
        extensions=(),
        extensions_absent=True,
    )
    return frame_handshake(HandshakeType.CLIENT_HELLO, hello.encode())


def test_server_answers_a_hello_without_extensions_with_protocol_version(
    server_config: ech.ServerConfig,
) -> None:
    message = tls12_client_hello()
    assert message.endswith(b"\x01\x00")  # compression methods, then nothing
    server = ech.ServerConnection(server_config)
    with pytest.raises(ProtocolVersion):
        server.receive_data(build_record(22, message))
    assert server.data_to_send() == plain_alert(AlertDescription.PROTOCOL_VERSION)


def test_client_answers_a_server_hello_without_extensions_with_protocol_version(
    client_config: ech.ClientConfig,
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    (_, payload), *_ = parse_records(client.data_to_send())
    hello = ClientHello.parse(payload[4:])
    sh = ServerHello(
        random=bytes(32),
        legacy_session_id_echo=hello.legacy_session_id,
        cipher_suite=0x1301,
        extensions=(),
        extensions_absent=True,
    )
    body = sh.encode()
    assert ServerHello.parse(body) == sh
    with pytest.raises(ProtocolVersion):
        client.receive_data(
            build_record(22, frame_handshake(HandshakeType.SERVER_HELLO, body))
        )
    assert client.data_to_send() == plain_alert(AlertDescription.PROTOCOL_VERSION)


def test_an_empty_extension_block_is_still_written() -> None:
    """Only a hello parsed without a block is written without one."""
    hello = ClientHello(bytes(32), b"", (0x1301,), ())
    assert hello.encode().endswith(b"\x01\x00\x00\x00")
    assert (
        dataclasses.replace(hello, extensions_absent=True)
        .encode()
        .endswith(b"\x01\x00")
    )
