"""PSK key exchange modes (RFC 8446 §4.2.9): psk_ke and psk_dhe_ke.

The client offers the modes of its configuration; the server takes the first
of its own that the client lists ("Servers MUST NOT select a key exchange
mode that is not listed by the client"). psk_ke resumes without (EC)DHE:
ServerHello has no key_share and the (EC)DHE input is zeros (§7.1).
"""

from __future__ import annotations

import dataclasses

import pytest

import ech
from ech.errors import IllegalParameter
from ech.events import EarlyDataStatus, HandshakeComplete
from ech.server.anti_replay import AntiReplay
from ech.tls.enums import ExtensionType, PskKeyExchangeMode
from ech.tls.extensions import Extension, encode_psk_modes
from ech.tls.messages import ClientHello, ServerHello
from tests.helpers import expect_plain_alert, handshake, make_pair

KE = PskKeyExchangeMode.PSK_KE
DHE = PskKeyExchangeMode.PSK_DHE_KE
E = ExtensionType


def _done(events: list[ech.Event]) -> HandshakeComplete:
    (done,) = [e for e in events if isinstance(e, HandshakeComplete)]
    return done


def _resume(
    client_modes: tuple[int, ...],
    server_modes: tuple[int, ...],
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
) -> tuple[HandshakeComplete, HandshakeComplete]:
    cc = dataclasses.replace(client_config, psk_key_exchange_modes=client_modes)
    sc = dataclasses.replace(server_config, psk_key_exchange_modes=server_modes)
    first, _, _, _ = handshake(cc, sc)
    (ticket,) = first.session_tickets
    _, _, client_events, server_events = handshake(cc, sc, session=ticket)
    return _done(client_events), _done(server_events)


@pytest.mark.parametrize(
    ("client_modes", "server_modes", "resumed", "dhe"),
    [
        ((KE, DHE), (KE, DHE), True, False),  # the server prefers psk_ke
        ((KE, DHE), (DHE, KE), True, True),  # the server prefers psk_dhe_ke
        ((KE,), (KE,), True, False),
        ((DHE,), (DHE,), True, True),
        ((KE,), (DHE,), False, True),  # no mode in common: a full handshake
        ((DHE,), (KE,), False, True),
    ],
)
def test_the_servers_preference_among_the_clients_modes(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    client_modes: tuple[int, ...],
    server_modes: tuple[int, ...],
    resumed: bool,
    dhe: bool,
) -> None:
    client, server = _resume(client_modes, server_modes, client_config, server_config)
    assert client.resumed is server.resumed is resumed
    assert (client.group is not None) is dhe
    assert client.group == server.group


def test_psk_ke_server_hello_has_no_key_share(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, psk_key_exchange_modes=(KE,))
    sc = dataclasses.replace(server_config, psk_key_exchange_modes=(KE,))
    first, _, _, _ = handshake(cc, sc)
    (ticket,) = first.session_tickets
    hellos: list[ServerHello] = []

    def spy(sh: ServerHello) -> ServerHello:
        hellos.append(sh)
        return sh

    pair = make_pair(cc, dataclasses.replace(sc, server_hello_hook=spy), session=ticket)
    pair.pump()
    assert not hellos[0].has_extension(E.KEY_SHARE)
    assert pair.client.handshake_complete


def test_psk_ke_client_hello_needs_no_groups(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§9.2: a ClientHello with a PSK need not carry supported_groups and
    key_share; a psk_ke server resumes it."""
    cc = dataclasses.replace(client_config, psk_key_exchange_modes=(KE,))
    sc = dataclasses.replace(server_config, psk_key_exchange_modes=(KE,))
    first, _, _, _ = handshake(cc, sc)
    (ticket,) = first.session_tickets

    def strip(ch: ClientHello) -> ClientHello:
        return ch.without_extension(E.SUPPORTED_GROUPS).without_extension(E.KEY_SHARE)

    _, _, _, server_events = handshake(
        dataclasses.replace(cc, client_hello_hook=strip), sc, session=ticket
    )
    assert _done(server_events).resumed
    assert _done(server_events).group is None


def test_psk_ke_with_an_unusable_ticket_falls_back_to_dhe(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, psk_key_exchange_modes=(KE, DHE))
    sc = dataclasses.replace(server_config, psk_key_exchange_modes=(KE,))
    first, _, _, _ = handshake(cc, sc)
    (ticket,) = first.session_tickets
    other = dataclasses.replace(sc, ticket_key=bytes(32))  # cannot open it
    _, _, client_events, _ = handshake(cc, other, session=ticket)
    assert not _done(client_events).resumed
    assert _done(client_events).group is not None


def test_client_refuses_a_mode_it_did_not_offer(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """psk_dhe_ke answered to a psk_ke-only client: illegal_parameter."""
    cc = dataclasses.replace(client_config, psk_key_exchange_modes=(KE,))
    sc_ke = dataclasses.replace(server_config, psk_key_exchange_modes=(KE,))
    first, _, _, _ = handshake(cc, sc_ke)
    (ticket,) = first.session_tickets
    # The client's hook lists both modes on the wire while its configuration
    # accepts psk_ke only: the server's psk_dhe_ke answer is then refused.
    sc_dhe = dataclasses.replace(server_config, psk_key_exchange_modes=(DHE, KE))
    pair = make_pair(
        dataclasses.replace(
            cc,
            client_hello_hook=lambda ch: ch.with_extension(
                Extension(E.PSK_KEY_EXCHANGE_MODES, encode_psk_modes([DHE, KE]))
            ),
        ),
        sc_dhe,
        session=ticket,
    )
    pair.to_server()
    expect_plain_alert(pair.client, pair.server.data_to_send(), IllegalParameter)


def test_psk_ke_with_early_data(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, psk_key_exchange_modes=(KE,))
    sc = dataclasses.replace(
        server_config,
        psk_key_exchange_modes=(KE,),
        max_early_data_size=100,
        anti_replay=AntiReplay(),
    )
    first, _, _, _ = handshake(cc, sc)
    (ticket,) = first.session_tickets
    client = ech.ClientConnection(cc, "example.test", session=ticket, early_data=b"hi")
    client.start()
    server = ech.ServerConnection(sc)
    events = server.receive_data(client.data_to_send())
    assert events == [ech.EarlyDataReceived(b"hi")]
    client_events = client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    assert _done(client_events).early_data is EarlyDataStatus.ACCEPTED
    assert _done(client_events).group is None
