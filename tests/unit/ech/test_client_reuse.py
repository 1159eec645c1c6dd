"""What a client computes once and shares across connections (issue #14).

Only values that follow from an immutable configuration object are shared:
each test checks that the shared value is what a connection sends, and that
another configuration gets its own.
"""

from __future__ import annotations

import dataclasses

import ech
from ech.client.ech import select_config
from ech.config import ECHConfig, ECHConfigList
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType, NamedGroup
from ech.tls.messages import ClientHello
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    client_config,
    client_hello_in,
    config_list,
    ech_key,
)

E = ExtensionType


def with_public_name(key_config: ECHConfig, name: bytes) -> ECHConfig:
    contents = key_config.contents
    assert contents is not None
    return ECHConfig.from_contents(dataclasses.replace(contents, public_name=name))


def first_hello(
    cc: ech.ClientConfig, configs: ECHConfigList | None = None
) -> ClientHello:
    client = ech.ClientConnection(cc, INNER_NAME, ech_configs=configs)
    client.start()
    return client_hello_in(client.data_to_send())


def test_config_extensions_are_encoded_once_and_sent_as_they_are() -> None:
    cc = client_config(alpn_protocols=("h2", "http/1.1"))
    assert cc.offer_extensions is cc.offer_extensions
    hello = first_hello(cc)
    start = [e.type for e in hello.extensions].index(E.SUPPORTED_GROUPS)
    sent = hello.extensions[start : start + len(cc.offer_extensions)]
    assert sent == cc.offer_extensions
    assert [e.type for e in sent] == [
        E.SUPPORTED_GROUPS,
        E.SIGNATURE_ALGORITHMS,
        E.SIGNATURE_ALGORITHMS_CERT,
        E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
        E.SUPPORTED_VERSIONS,
        E.PSK_KEY_EXCHANGE_MODES,
    ]
    assert hello.extensions[start - 1].type == E.SERVER_NAME
    assert hello.extensions[start + len(sent)].type == E.KEY_SHARE
    alpn = hello.extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
    assert alpn is not None
    assert ext.decode_alpn(alpn) == (b"h2", b"http/1.1")


def test_a_replaced_config_offers_its_own_extensions() -> None:
    cc = client_config(alpn_protocols=("h2",))
    assert first_hello(cc).extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
    other = dataclasses.replace(
        cc,
        alpn_protocols=(),
        groups=(NamedGroup.X25519, NamedGroup.SECP384R1),
        signature_algorithms_cert=None,
    )
    hello = first_hello(other)
    assert not hello.has_extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
    assert not hello.has_extension(E.SIGNATURE_ALGORITHMS_CERT)
    groups = hello.extension(E.SUPPORTED_GROUPS)
    assert groups is not None
    assert ext.decode_u16_list(groups) == (NamedGroup.X25519, NamedGroup.SECP384R1)
    assert first_hello(cc).extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)


def test_the_config_choice_is_made_per_list() -> None:
    first, second = ech_key(config_id=1), ech_key(config_id=2)
    unusable = with_public_name(second.config, b"192.0.2.1")  # ECH-14
    assert select_config(config_list(first)) == first.config
    assert select_config(config_list(second)) == second.config
    assert select_config(ECHConfigList((unusable, first.config))) == first.config
    assert select_config(ECHConfigList((unusable,))) is None


def test_each_public_name_gets_its_own_outer_server_name() -> None:
    cc = client_config()
    key = ech_key()
    for name in (b"one.example", b"two.example", b"one.example"):
        configs = ECHConfigList((with_public_name(key.config, name),))
        sni = first_hello(cc, configs).extension(E.SERVER_NAME)
        assert sni is not None
        assert ext.decode_server_name(sni) == name.decode()
