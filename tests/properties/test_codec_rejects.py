"""Robustness: untrusted bytes yield a value or an Alert, never another exception.

Covers every message parser, every extension decoder, and both connections'
``receive_data`` fed garbage or mutated flights. After an Alert, the
connection must have queued an alert record.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ech
from ech.errors import Alert
from ech.pki import TestCA
from ech.testing import strategies as s
from ech.tls.enums import ContentType
from ech.tls.extensions import read_extensions
from ech.tls.messages import (
    MESSAGE_CLASSES,
    ClientHello,
    EndOfEarlyData,
    Finished,
    Message,
    ServerHello,
)
from ech.tls.records import RecordLayer
from ech.tls.wire import Reader
from tests.helpers import (
    Connection,
    deterministic_configs,
    make_pair,
    parse_records,
    plain_alert,
    rewrite_protected_messages,
)

PARSERS = sorted(MESSAGE_CLASSES.values(), key=lambda c: c.msg_type)


def _value_or_alert(parse: Callable[[bytes], object], data: bytes) -> object | None:
    try:
        return parse(data)
    except Alert:
        return None


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.__name__)
@given(data=st.binary(max_size=200))
def test_message_parsers_accept_or_alert_on_random_bytes(
    cls: type[Message], data: bytes
) -> None:
    parsed = _value_or_alert(cls.parse, data)
    if parsed is not None:
        assert isinstance(parsed, cls)
        assert parsed.encode() == data  # whatever parses re-encodes exactly


@given(message=s.messages, data=st.data())
def test_message_parsers_accept_or_alert_on_mutations(
    message: Message, data: st.DataObject
) -> None:
    mutated = data.draw(s.mutations(message.encode()))
    parsed = _value_or_alert(type(message).parse, mutated)
    if parsed is not None:
        assert isinstance(parsed, Message)
        assert parsed.encode() == mutated


@given(message=s.messages, data=st.data())
def test_truncated_messages_are_rejected_or_canonical(
    message: Message, data: st.DataObject
) -> None:
    body = message.encode()
    end = data.draw(st.integers(0, max(len(body) - 1, 0)))
    parsed = _value_or_alert(type(message).parse, body[:end])
    if parsed is not None:
        # Only Finished (no length field), EndOfEarlyData (empty), and a hello
        # cut right before its extension block (one of an earlier TLS, RFC
        # 8446 §4.1.2) get here.
        if isinstance(parsed, ClientHello | ServerHello):
            assert parsed.extensions_absent
        else:
            assert isinstance(parsed, Finished | EndOfEarlyData)
        assert parsed.encode() == body[:end]


@pytest.mark.parametrize("name", sorted(s.DECODERS))
@given(data=st.one_of(st.binary(max_size=120), st.binary(max_size=8)))
def test_extension_decoders_accept_or_alert(name: str, data: bytes) -> None:
    _value_or_alert(s.DECODERS[name], data)


@given(data=st.binary(max_size=200))
def test_extension_block_reader_accepts_or_alerts(data: bytes) -> None:
    _value_or_alert(lambda d: read_extensions(Reader(d)), data)


@given(data=s.garbage)
def test_record_layer_accepts_or_alerts(data: bytes) -> None:
    layer = RecordLayer()
    layer.receive(data)

    def drain(_: bytes) -> None:
        while layer.next_record() is not None:
            pass

    _value_or_alert(drain, data)


# connections ---------------------------------------------------------------------


def _feed(conn: Connection, data: bytes) -> None:
    """Feed ``data``; any exception must be an Alert, with its record queued."""
    alert: Alert | None = None
    try:
        conn.receive_data(data)
    except Alert as error:
        alert = error
    if alert is None:
        return
    queued = conn.data_to_send()
    records = parse_records(queued)
    assert records, "no alert queued"
    last_type, last = records[-1]
    if last_type == ContentType.ALERT:
        assert queued.endswith(plain_alert(alert.description))
    else:
        assert last_type == ContentType.APPLICATION_DATA
        assert len(last) == 2 + 1 + 16  # level, description, type, tag


@given(data=s.garbage)
def test_server_receive_data_garbage(
    server_config: ech.ServerConfig, data: bytes
) -> None:
    _feed(ech.ServerConnection(server_config), data)


@given(data=s.garbage)
def test_client_receive_data_garbage(
    client_config: ech.ClientConfig, data: bytes
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    client.data_to_send()
    _feed(client, data)


@given(data=s.garbage)
def test_server_receive_data_garbage_after_client_hello(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, data: bytes
) -> None:
    pair = make_pair(client_config, server_config)
    pair.to_server()
    pair.server.data_to_send()
    _feed(pair.server, data)


@given(data=s.garbage)
def test_client_receive_data_garbage_after_server_hello(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, data: bytes
) -> None:
    pair = make_pair(client_config, server_config)
    pair.to_server()
    first, *_ = parse_records(pair.server.data_to_send())
    pair.client.receive_data(s.record(*first))
    pair.client.data_to_send()
    _feed(pair.client, data)


@given(data=st.data())
def test_server_survives_mutated_client_hello(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    data: st.DataObject,
) -> None:
    pair = make_pair(client_config, server_config)
    hello = pair.client.data_to_send()
    _feed(pair.server, data.draw(s.mutations(hello)))


@given(data=st.data())
def test_client_survives_mutated_server_hello(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    data: st.DataObject,
) -> None:
    pair = make_pair(client_config, server_config)
    pair.to_server()
    flight = pair.server.data_to_send()
    first_len = 5 + int.from_bytes(flight[3:5], "big")
    _feed(pair.client, data.draw(s.mutations(flight[:first_len])) + flight[first_len:])


@pytest.fixture(scope="module")
def fixed_configs(
    ca: TestCA, ed25519_leaf: ech.CertifiedKey
) -> Callable[[], tuple[ech.ClientConfig, ech.ServerConfig]]:
    """Fresh reproducible configs, so one choice sequence means one run."""
    now = time.time()
    return lambda: deterministic_configs(ca.certificate, ed25519_leaf, b"fuzz", now)


@pytest.mark.parametrize("alpn", [False, True])
@given(data=st.data())
def test_client_survives_mutated_encrypted_flight(
    fixed_configs: Callable[[], tuple[ech.ClientConfig, ech.ServerConfig]],
    alpn: bool,
    data: st.DataObject,
) -> None:
    # EncryptedExtensions, Certificate, CertificateVerify, Finished, NewSessionTicket.
    target = data.draw(st.integers(0, 4), label="message")

    def mutate(index: int, message: bytes) -> bytes:
        if index != target:
            return message
        return data.draw(s.mutations(message), label="mutated")

    client_config, server_config = fixed_configs()
    if alpn:
        client_config = dataclasses.replace(client_config, alpn_protocols=("h2",))
        server_config = dataclasses.replace(server_config, alpn_protocols=("h2",))
    pair = make_pair(client_config, server_config)
    rewrite_protected_messages(pair.server, mutate)
    pair.to_server()
    flight = pair.server.data_to_send()
    _feed(pair.client, flight)
    if pair.client.handshake_complete:
        pair.to_server()
        _feed(pair.client, pair.server.data_to_send())


@given(data=st.data())
def test_server_survives_mutated_client_finished(
    fixed_configs: Callable[[], tuple[ech.ClientConfig, ech.ServerConfig]],
    data: st.DataObject,
) -> None:
    pair = make_pair(*fixed_configs())
    hello = pair.client.data_to_send()
    rewrite_protected_messages(pair.client, lambda _i, m: data.draw(s.mutations(m)))
    pair.server.receive_data(hello)
    pair.to_client()
    _feed(pair.server, pair.client.data_to_send())
