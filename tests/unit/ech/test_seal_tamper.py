"""The client's fault-injection seam, :class:`ech.client.ech.SealTamper`.

A probe builds hostile ClientHelloOuters through it (RFC 9849 §5.1, §7.1.1);
these tests show each hook changes exactly its step and that a server sees
the fault it was given.
"""

from __future__ import annotations

import dataclasses

import pytest

from ech.client.ech import ECHOffer, SealTamper
from ech.errors import Alert, IllegalParameter, MissingExtension
from ech.events import ECHStatus
from ech.extension import parse_client_hello_extension
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello, ServerHello
from tests.unit.ech.ech_helpers import (
    CHACHA,
    MTI,
    client_config,
    client_hello_in,
    config_list,
    ech_key,
    ech_offer,
    ech_pair,
    hrr_client_config,
    hrr_server_config,
    pump_to_end,
    server_config,
)

E = ExtensionType


def test_no_tamper_is_the_ordinary_offer() -> None:
    key = ech_key()
    pair = ech_pair(
        client_config(ech_seal_tamper=SealTamper()),
        server_config(key),
        config_list(key),
    )
    pair.pump()
    assert pair.client.ech_status is ECHStatus.ACCEPTED


def test_cipher_suite_overrides_the_configs_choice() -> None:
    key = ech_key()
    tamper = SealTamper(cipher_suite=CHACHA)
    pair = ech_pair(
        client_config(ech_seal_tamper=tamper), server_config(key), config_list(key)
    )
    outer = ech_offer(client_hello_in(pair.client.data_to_send()))
    assert outer.cipher_suite == CHACHA != MTI


@pytest.mark.requirement("ECH-29")
def test_encoded_inner_hook_is_encrypted() -> None:
    """Non-zero padding put in by the hook reaches the server (ECH-29)."""
    key = ech_key()
    tamper = SealTamper(encoded_inner=lambda offer, encoded: encoded + b"\x01")
    pair = ech_pair(
        client_config(ech_seal_tamper=tamper), server_config(key), config_list(key)
    )
    with pytest.raises(IllegalParameter, match="padding"):
        pair.to_server()


@pytest.mark.requirement("ECH-33")
def test_outer_hook_changes_the_aad_and_the_sent_fields() -> None:
    """A config_id changed before sealing is sent and authenticated (ECH-33)."""
    key = ech_key(config_id=7)

    def other_id(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
        assert data is not None
        sent = parse_client_hello_extension(data)
        assert sent is not None
        changed = dataclasses.replace(sent, config_id=9)
        return hello.with_extension(
            Extension(E.ENCRYPTED_CLIENT_HELLO, changed.encode())
        )

    cc = client_config(ech_seal_tamper=SealTamper(outer=other_id))
    pair = ech_pair(cc, server_config(key, ech_trial_decryption=True), config_list(key))
    assert ech_offer(client_hello_in(pair.client.data_to_send())).config_id == 9
    pair = ech_pair(cc, server_config(key, ech_trial_decryption=True), config_list(key))
    pair.pump()
    assert pair.client.ech_status is ECHStatus.ACCEPTED


def test_outer_hook_must_keep_the_payload() -> None:
    key = ech_key()

    def drop(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        return hello.without_extension(E.ENCRYPTED_CLIENT_HELLO)

    with pytest.raises(ValueError, match=r"SealTamper\.outer"):
        ech_pair(
            client_config(ech_seal_tamper=SealTamper(outer=drop)),
            server_config(key),
            config_list(key),
        )


@pytest.mark.requirement("ECH-83")
def test_sealed_hook_runs_on_the_second_hello_after_hrr() -> None:
    """Removing ECH from ClientHelloOuter2 only: missing_extension (ECH-83)."""
    key = ech_key()
    seen: list[bool] = []

    def sealed(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        seen.append(offer.sealed_once)
        if offer.sealed_once:
            return hello.without_extension(E.ENCRYPTED_CLIENT_HELLO)
        return hello

    pair = ech_pair(
        hrr_client_config(ech_seal_tamper=SealTamper(sealed=sealed)),
        hrr_server_config(key),
        config_list(key),
    )
    with pytest.raises(MissingExtension):
        pump_to_end(pair)
    assert seen == [False, True]


@pytest.mark.requirement("ECH-54")
def test_server_confirmation_hook_makes_the_client_see_a_rejection() -> None:
    """A wrong confirmation in ServerHello: the client takes ECH as rejected."""
    key = ech_key()
    sc = server_config(
        key, ech_confirmation_hook=lambda sh, value: bytes(8) if value else value
    )
    pair = ech_pair(client_config(), sc, config_list(key))
    with pytest.raises(Alert):
        pump_to_end(pair)
    assert pair.client.ech_status is ECHStatus.REJECTED


def test_server_confirmation_hook_sees_the_hello_retry_request() -> None:
    key = ech_key()
    seen: list[bool] = []

    def hook(message: ServerHello, value: bytes) -> bytes:
        seen.append(message.is_hello_retry_request)
        return value

    pair = ech_pair(
        hrr_client_config(),
        hrr_server_config(key, ech_confirmation_hook=hook),
        config_list(key),
    )
    pump_to_end(pair)
    assert pair.client.ech_status is ECHStatus.ACCEPTED
    assert seen == [True, False]
