"""Feeding bytes in any split gives the same events as whole flights.

A scenario runs a handshake and then application data, a KeyUpdate and
close_notify both ways. It is run once with every flight fed whole and once
with every flight cut one byte at a time or at random points; the event
lists (tickets reduced to their stable fields) must be equal.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ech
from ech.events import Event
from ech.tls.enums import NamedGroup
from tests.helpers import Connection, handshake, normalize_events

Splitter = Callable[[bytes], list[bytes]]
SCENARIOS = ["plain", "hello_retry", "resumed", "alpn"]


def whole(data: bytes) -> list[bytes]:
    """One chunk per flight."""
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    """One byte at a time."""
    return [data[i : i + 1] for i in range(len(data))]


def random_splitter(draw: st.DataObject) -> Splitter:
    """Cut each flight at points hypothesis chooses."""

    def split(data: bytes) -> list[bytes]:
        cuts = draw.draw(st.lists(st.integers(0, 1 << 16), max_size=12))
        points = sorted({c % (len(data) + 1) for c in cuts})
        edges = [0, *points, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(edges)]

    return split


@dataclasses.dataclass
class _Scenario:
    client_config: ech.ClientConfig
    server_config: ech.ServerConfig
    session: ech.SessionTicket | None


def _scenario(
    name: str, client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> _Scenario:
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
        key_share_groups=(NamedGroup.X25519,),
    )
    sc = server_config
    session = None
    if name == "hello_retry":
        sc = dataclasses.replace(sc, groups=(NamedGroup.SECP256R1,))
    elif name == "resumed":
        client, _, _, _ = handshake(cc, sc)
        session = client.session_tickets[0]
    elif name == "alpn":
        cc = dataclasses.replace(cc, alpn_protocols=("h2", "http/1.1"))
        sc = dataclasses.replace(sc, alpn_protocols=("http/1.1",))
    return _Scenario(cc, sc, session)


def _run(scenario: _Scenario, split: Splitter) -> tuple[list[object], list[object]]:
    client = ech.ClientConnection(
        scenario.client_config, "example.test", session=scenario.session
    )
    server = ech.ServerConnection(scenario.server_config)
    client_events: list[Event] = []
    server_events: list[Event] = []

    def deliver(src: Connection, dst: Connection, events: list[Event]) -> bool:
        data = src.data_to_send()
        if not data:
            return False  # b"" would mean EOF
        for chunk in split(data):
            if chunk:
                events.extend(dst.receive_data(chunk))
        return True

    def pump() -> None:
        for _ in range(10):
            moved = deliver(client, server, server_events)
            moved = deliver(server, client, client_events) or moved
            if not moved:
                return
        raise AssertionError("never quiet")

    client.start()
    pump()
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    server.send(bytes(range(256)) * 100)  # two full records and a bit
    pump()
    client.update_keys(request_peer=True)
    client.send(b"after client update")
    pump()
    server.update_keys(request_peer=False)
    server.send(b"after server update")
    pump()
    client.close()
    pump()
    server.send(b"bye")
    server.close()
    pump()
    return normalize_events(client_events), normalize_events(server_events)


@pytest.fixture(scope="module")
def references(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> dict[str, tuple[_Scenario, tuple[list[object], list[object]]]]:
    """Each scenario and its events with whole-flight feeding."""
    out = {}
    for name in SCENARIOS:
        scenario = _scenario(name, client_config, server_config)
        out[name] = (scenario, _run(scenario, whole))
    return out


def test_reference_scenarios_complete(
    references: dict[str, tuple[_Scenario, tuple[list[object], list[object]]]],
) -> None:
    for name, (_, (client_events, server_events)) in references.items():
        assert len(client_events) == 9, name
        assert len(server_events) == 5, name
        done = client_events[0]
        assert isinstance(done, ech.HandshakeComplete)
        assert done.resumed == (name == "resumed")
        assert done.hello_retry == (name == "hello_retry")
        assert done.alpn_protocol == ("http/1.1" if name == "alpn" else None)
        assert client_events[-1] == ech.ConnectionClosed(
            ech.AlertDescription.CLOSE_NOTIFY
        )
        assert server_events[-1] == ech.ConnectionClosed(
            ech.AlertDescription.CLOSE_NOTIFY
        )


@pytest.mark.parametrize("name", SCENARIOS)
def test_bytewise_feeding_matches_whole_flights(
    references: dict[str, tuple[_Scenario, tuple[list[object], list[object]]]],
    name: str,
) -> None:
    scenario, expected = references[name]
    assert _run(scenario, bytewise) == expected


@pytest.mark.parametrize("name", SCENARIOS)
@given(data=st.data())
def test_random_splits_match_whole_flights(
    references: dict[str, tuple[_Scenario, tuple[list[object], list[object]]]],
    name: str,
    data: st.DataObject,
) -> None:
    scenario, expected = references[name]
    assert _run(scenario, random_splitter(data)) == expected
