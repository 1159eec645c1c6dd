"""Encrypted Client Hello interop with Go's crypto/tls (``interop/go``), both roles.

Our client against the Go server (``tlspeer server -ech-key``) and the Go
client (``tlspeer client -ech-config-list``) against our server. Go reads the
RFC 9934 key files :func:`ech.keys.write_ech_key` writes. Every server holds
one certificate valid for both the inner name (:data:`SERVER_NAME`) and the
ECH ``public_name`` (:data:`PUBLIC_NAME`), so the rejection path can be
authenticated (interop.md lesson 8).

Our client is driven by a small socket pump around
:class:`ech.ClientConnection` that also records every byte it sends. A
missing Go toolchain fails these tests (never skips).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import ech
from ech.blocking import connect
from ech.config import ECHConfigList
from ech.errors import ECHRejectedError, PeerAlert
from ech.events import ECHRejected, ECHStatus, HandshakeComplete
from ech.hpke import KEM
from ech.httpx import ECHTransport
from ech.keys import ECHKey, generate_ech_key, write_ech_key
from ech.tls.enums import AlertDescription, NamedGroup
from interop.go_peer import Event, GoClientError, GoServer, run_go_client
from tests.harness.pki import Leaf
from tests.integration.conftest import (
    IO_TIMEOUT,
    PKI,
    SERVER_NAME,
    ServedConnection,
    ThreadedServer,
    echo_with_ours,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

PUBLIC_NAME = "public.test"
"""The ECH public_name (client-facing server); must not contain SERVER_NAME."""

PAYLOAD = b"hello through ECH"

Serve = Callable[[Callable[[socket.socket], Any]], ThreadedServer[Any]]


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ech_leaf(pki: PKI) -> Leaf:
    """A P-256 leaf valid for both :data:`SERVER_NAME` and :data:`PUBLIC_NAME`."""
    return pki.files.leaf("ech-leaf", SERVER_NAME, PUBLIC_NAME)


@dataclass(frozen=True)
class KeyFile:
    """An ECH key and the RFC 9934 file holding it."""

    key: ECHKey
    path: Path

    @property
    def config_list(self) -> ECHConfigList:
        """An ECHConfigList holding only this key's config."""
        return ECHConfigList((self.key.config,))


KeyFactory = Callable[..., KeyFile]


@pytest.fixture
def make_key(tmp_path: Path) -> KeyFactory:
    """Generate ECH keys for :data:`PUBLIC_NAME` and write them as RFC 9934 files."""
    counter = iter(range(1000))

    def factory(config_id: int, kem_id: int = KEM.DHKEM_X25519_HKDF_SHA256) -> KeyFile:
        key = generate_ech_key(PUBLIC_NAME, kem_id=kem_id, config_id=config_id)
        path = tmp_path / f"ech-{next(counter)}.pem"
        write_ech_key(path, key)
        return KeyFile(key, path)

    return factory


GoServerFactory = Callable[..., GoServer]


@pytest.fixture
def go_server(go_peer: Path, ech_leaf: Leaf) -> Iterator[GoServerFactory]:
    """Start Go servers presenting :func:`ech_leaf`; always stopped afterwards."""
    started: list[GoServer] = []

    def factory(**kwargs: Any) -> GoServer:
        server = GoServer([(ech_leaf.cert_path, ech_leaf.key_path)], **kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in reversed(started):
        server.stop()


# -- our client --------------------------------------------------------------------


@dataclass
class ClientRun:
    """What happened on one connection of our client."""

    sent: bytes
    """Every byte our client wrote to the socket."""
    events: list[ech.Event] = field(default_factory=list)
    handshake: HandshakeComplete | None = None
    rejected: ECHRejected | None = None
    echoed: bytes = b""

    @property
    def accepted(self) -> HandshakeComplete:
        """The completed handshake (fails the test on a rejection)."""
        assert self.rejected is None, f"ECH was rejected: {self.rejected}"
        assert self.handshake is not None
        return self.handshake


def our_client(
    port: int,
    config: ech.ClientConfig,
    ech_configs: ECHConfigList | None,
    server_name: str = SERVER_NAME,
) -> ClientRun:
    """Connect our client with ECH; on success echo :data:`PAYLOAD` and close.

    Stops at :class:`HandshakeComplete` or :class:`ECHRejected` (after sending
    the queued ``ech_required`` alert).
    """
    conn = ech.ClientConnection(config, server_name, ech_configs=ech_configs)
    sent = bytearray()
    run = ClientRun(b"")
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:

        def flush() -> None:
            data = conn.data_to_send()
            if data:
                sent.extend(data)
                sock.sendall(data)

        def pump() -> None:
            data = sock.recv(65536)
            if not data:
                raise AssertionError("the Go server closed the connection")
            try:
                new = conn.receive_data(data)
            finally:
                flush()  # alerts are queued before receive_data raises
            run.events.extend(new)
            for event in new:
                if isinstance(event, HandshakeComplete):
                    run.handshake = event
                elif isinstance(event, ECHRejected):
                    run.rejected = event
                elif isinstance(event, ech.DataReceived):
                    run.echoed += event.data

        conn.start()
        flush()
        while run.handshake is None and run.rejected is None:
            pump()
        if run.handshake is not None:
            conn.send(PAYLOAD)
            flush()
            while len(run.echoed) < len(PAYLOAD):
                pump()
            conn.close()
            flush()
    run.sent = bytes(sent)
    return run


def client_config(pki: PKI) -> ech.ClientConfig:
    """Our client config trusting the test CA."""
    return ech.ClientConfig(trust_store=(pki.ca.certificate,))


def go_handshake(server: GoServer) -> Event:
    """The Go server's next handshake event (an error event fails the test)."""
    event = server.wait_event(
        IO_TIMEOUT, predicate=lambda e: e.get("event") in ("handshake", "error")
    )
    assert event["event"] == "handshake", f"Go server failed: {event}"
    return event


def assert_accepted_by_go(run: ClientRun, server: GoServer) -> Event:
    """Our client and the Go server both report ECH accepted for the inner name."""
    done = run.accepted
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.server_name == SERVER_NAME
    assert done.outer_server_name == PUBLIC_NAME
    assert run.echoed == PAYLOAD
    event = go_handshake(server)
    assert event["ech_accepted"] is True
    assert event["server_name"] == SERVER_NAME
    return event


@pytest.mark.requirement("ECH-17", "ECH-37", "ECH-42", "ECH-48", "ECH-54", "ECH-57")
def test_our_client_go_server_accepts_x25519(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory
) -> None:
    """ECH with the mandatory X25519 suite is accepted by Go.

    ECH-17 (MTI suite), ECH-37 (HPKE info over the single ECHConfig),
    ECH-42 (outer SNI = public_name), ECH-48 (payload sealed over the AAD), ECH-54/#55
    (accept confirmation in ServerHello.random), ECH-57 (inner name used).
    """
    key = make_key(config_id=1)
    server = go_server(ech_keys=[key.path])
    run = our_client(server.port, client_config(pki), key.config_list)
    event = assert_accepted_by_go(run, server)
    assert event["hrr"] is False
    assert run.accepted.hello_retry is False


@pytest.mark.requirement("ECH-3", "ECH-6", "ECH-37")
def test_our_client_go_server_accepts_p256(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory
) -> None:
    """An ECH config with DHKEM(P-256, HKDF-SHA256) is accepted by Go.

    ECH-3 (HpkeKeyConfig with kem_id 0x0010), ECH-6/#7 (a supported
    non-X25519 KEM is usable), ECH-37 (HPKE setup with the P-256 KEM).
    """
    key = make_key(config_id=7, kem_id=KEM.DHKEM_P256_HKDF_SHA256)
    assert key.key.config.contents is not None
    assert key.key.config.contents.kem_id == KEM.DHKEM_P256_HKDF_SHA256
    server = go_server(ech_keys=[key.path])
    run = our_client(server.port, client_config(pki), key.config_list)
    assert_accepted_by_go(run, server)


@pytest.mark.requirement("ECH-22", "ECH-60", "ECH-63", "ECH-64")
def test_our_client_go_server_stale_config_then_retry(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory
) -> None:
    """A config Go does not hold is rejected; the retry configs work.

    ECH-60/#65 (outer handshake authenticated for public_name), ECH-63
    (ech_required, no success reported), ECH-64 (retry on a new connection with
    the authenticated retry_configs), ECH-22 (retry_configs in EE).
    """
    served = make_key(config_id=1)
    stale = make_key(config_id=2)
    server = go_server(ech_keys=[served.path])
    config = client_config(pki)

    first = our_client(server.port, config, stale.config_list)
    assert first.handshake is None
    assert first.rejected is not None
    assert first.rejected.public_name == PUBLIC_NAME
    retry = first.rejected.retry_configs
    assert retry is not None
    assert served.key.config.raw in [c.raw for c in retry.configs]
    event = server.wait_event(
        IO_TIMEOUT, predicate=lambda e: e.get("event") in ("handshake", "error")
    )
    assert event.get("ech_accepted") is not True  # Go also saw a rejection

    second = our_client(server.port, config, retry)
    assert_accepted_by_go(second, server)


@pytest.mark.requirement("ECH-63", "ECH-64")
def test_blocking_connect_retries_against_go(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory
) -> None:
    """``ech.blocking.connect`` follows Go's retry_configs once, on its own.

    ECH-64 (one retry on a new connection with the authenticated
    retry_configs; without retrying, the rejection is reported as an error),
    ECH-63 (no success reported for the rejected connection).
    """
    served = make_key(config_id=1)
    stale = make_key(config_id=2)
    server = go_server(ech_keys=[served.path])
    config = client_config(pki)

    with pytest.raises(ECHRejectedError) as caught:
        connect(
            "127.0.0.1",
            server.port,
            config,
            SERVER_NAME,
            ech_configs=stale.config_list,
            ech_retry=False,
            timeout=IO_TIMEOUT,
        )
    assert caught.value.can_retry
    assert caught.value.public_name == PUBLIC_NAME

    tls = connect(
        "127.0.0.1",
        server.port,
        config,
        SERVER_NAME,
        ech_configs=stale.config_list,
        timeout=IO_TIMEOUT,
    )
    try:
        assert tls.retried is True
        done = tls.negotiated
        assert done.ech_status is ECHStatus.ACCEPTED
        assert done.server_name == SERVER_NAME
        tls.sendall(PAYLOAD)
        assert tls.recv_exactly(len(PAYLOAD)) == PAYLOAD
    finally:
        tls.close()
    events = [
        server.wait_event(
            IO_TIMEOUT, predicate=lambda e: e.get("event") in ("handshake", "error")
        )
        for _ in range(3)
    ]
    assert [e.get("ech_accepted") for e in events] == [False, False, True]
    assert events[-1]["server_name"] == SERVER_NAME


@pytest.mark.requirement("ECH-11", "ECH-22")
def test_our_client_go_server_no_retry_key(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory
) -> None:
    """A key loaded with ``-ech-key-no-retry`` is accepted but not advertised.

    ECH-11 (the server keeps older configs it no longer publishes),
    ECH-22/#64 (retry_configs carry only the published configs).
    """
    published = make_key(config_id=1)
    old = make_key(config_id=2)
    stale = make_key(config_id=3)
    server = go_server(ech_keys=[published.path], ech_keys_no_retry=[old.path])
    config = client_config(pki)

    assert_accepted_by_go(our_client(server.port, config, old.config_list), server)

    rejected = our_client(server.port, config, stale.config_list).rejected
    assert rejected is not None
    assert rejected.retry_configs is not None
    assert [c.raw for c in rejected.retry_configs.configs] == [published.key.config.raw]


@pytest.mark.requirement("ECH-23", "ECH-58", "ECH-59")
def test_our_client_go_server_hrr_with_ech(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory
) -> None:
    """Go's curve preference (P-384 only) forces HRR; ECH stays accepted.

    ECH-23/#56 (HRR ECH confirmation), ECH-58 (second ClientHelloOuter
    with the same HPKE context and empty enc), ECH-59 (both inner hellos in the
    transcript; the final ServerHello confirms acceptance).
    """
    key = make_key(config_id=1)
    server = go_server(ech_keys=[key.path], curves=["P384"])
    run = our_client(server.port, client_config(pki), key.config_list)
    event = assert_accepted_by_go(run, server)
    assert run.accepted.hello_retry is True
    assert run.accepted.group == NamedGroup.SECP384R1
    assert event["hrr"] is True
    assert event["group"] == "P384"


@pytest.mark.requirement("ECH-42", "ECH-47", "ECH-58")
@pytest.mark.parametrize("hrr", [False, True], ids=["one-hello", "hrr"])
def test_our_client_never_sends_the_inner_name(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory, hrr: bool
) -> None:
    """The inner server name never appears in the bytes our client sends.

    ECH-42 (outer SNI is the public_name), ECH-47 (nothing in
    ClientHelloOuter reveals the inner name), ECH-58 (also true of the second
    ClientHelloOuter after HRR).
    """
    key = make_key(config_id=1)
    server = go_server(ech_keys=[key.path], curves=["P384"] if hrr else None)
    run = our_client(server.port, client_config(pki), key.config_list)
    assert_accepted_by_go(run, server)
    assert run.accepted.hello_retry is hrr
    assert SERVER_NAME.encode() not in run.sent
    assert PUBLIC_NAME.encode() in run.sent  # the outer SNI is in clear


# -- Go client, our server ----------------------------------------------------------


def our_ech_server(
    leaf: Leaf, *keys: ECHKey, **kwargs: Any
) -> Callable[[socket.socket], ServedConnection | BaseException]:
    """Our ECH server as a :class:`ThreadedServer` handler.

    Handshake failures (e.g. the Go client's ``ech_required`` alert after a
    rejection) are returned rather than raised so tests can inspect them.
    """
    config = ech.ServerConfig(certificates=(leaf.certified,), ech_keys=keys, **kwargs)
    echo = echo_with_ours(config)

    def handler(conn: socket.socket) -> ServedConnection | BaseException:
        try:
            return echo(conn)
        except PeerAlert as error:
            return error

    return handler


OurServer = ThreadedServer[ServedConnection | BaseException]


def go_client(
    server: OurServer,
    pki: PKI,
    config_list: ECHConfigList,
    *,
    ech_retry: bool = False,
    allow_ech_rejection: bool = False,
) -> list[Event]:
    """Run the Go client against our server offering ECH with ``config_list``.

    If Go fails, the assertion also names what our server saw (e.g. the alert
    it sent and why), not just Go's side.
    """
    try:
        return run_go_client(
            server.port,
            SERVER_NAME,
            pki.ca_path,
            ech_config_list=config_list.to_base64(),
            ech_retry=ech_retry,
            allow_ech_rejection=allow_ech_rejection,
            timeout=IO_TIMEOUT,
        )
    except GoClientError as error:
        ours = server.outcome()
        raise AssertionError(f"{error}; our server: {ours!r}") from error


def served(server: OurServer) -> ServedConnection:
    """The next connection our server completed (a failure fails the test)."""
    value = server.result()
    assert isinstance(value, ServedConnection), f"our server failed: {value!r}"
    return value


def assert_accepted_by_ours(
    result: Event, connection: ServedConnection
) -> ech.HandshakeComplete:
    """Go's result line and our server both report ECH accepted."""
    assert result["event"] == "result"
    assert result["ech_accepted"] is True
    assert result["server_name"] == SERVER_NAME
    assert result["echo_ok"] is True
    done = connection.handshake
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.server_name == SERVER_NAME
    assert done.outer_server_name == PUBLIC_NAME
    return done


@pytest.mark.requirement("ECH-30", "ECH-55", "ECH-75", "ECH-76", "ECH-77")
def test_go_client_our_server_accepts(
    pki: PKI, ech_leaf: Leaf, make_key: KeyFactory, go_peer: Path, serve: Serve
) -> None:
    """Go's ECH client is accepted by our server.

    ECH-75 (ECH decided first), ECH-76 (candidate by config_id), ECH-77/#78
    (HPKE open with the config's info; the inner hello is TLS 1.3 only), ECH-30/#31
    (inner hello reconstructed from ech_outer_extensions), ECH-55 (confirmation
    Go verifies).
    """
    key = make_key(config_id=1)
    server = serve(our_ech_server(ech_leaf, key.key))
    results = go_client(server, pki, key.config_list)
    assert [r["event"] for r in results] == ["result"]
    done = assert_accepted_by_ours(results[0], served(server))
    assert done.hello_retry is False


@pytest.mark.requirement("ECH-22", "ECH-24", "ECH-64", "ECH-65")
def test_go_client_our_server_rejects_then_retry(
    pki: PKI, ech_leaf: Leaf, make_key: KeyFactory, go_peer: Path, serve: Serve
) -> None:
    """Go, holding a stale config, follows our retry_configs and is accepted.

    ECH-22 (retry_configs in EncryptedExtensions), ECH-64 (the client
    retries with them on a new connection), ECH-65 (our public_name certificate
    authenticates the rejection), ECH-24/#63 (Go aborts with ech_required).
    """
    key = make_key(config_id=1)
    stale = make_key(config_id=2)
    server = serve(our_ech_server(ech_leaf, key.key))
    lines = go_client(server, pki, stale.config_list, ech_retry=True)
    assert [line["event"] for line in lines] == ["ech_rejected", "result"]
    retry = lines[0]["retry_configs"]
    assert isinstance(retry, str)
    assert [c.raw for c in ECHConfigList.from_base64(retry).configs] == [
        key.key.config.raw
    ]
    assert lines[1]["ech_retried"] is True

    first = server.outcome()
    assert isinstance(first, PeerAlert), f"expected Go's ech_required: {first!r}"
    assert first.description is AlertDescription.ECH_REQUIRED
    assert_accepted_by_ours(lines[1], served(server))


@pytest.mark.requirement("ECH-22", "ECH-60")
def test_go_client_our_server_rejects_without_retry(
    pki: PKI, ech_leaf: Leaf, make_key: KeyFactory, go_peer: Path, serve: Serve
) -> None:
    """Without ``-ech-retry`` Go reports the rejection and gives up (exit 3).

    ECH-60/#63 (a rejected connection is never reported as a
    success; the client aborts with ech_required), ECH-22 (retry_configs sent).
    """
    key = make_key(config_id=1)
    stale = make_key(config_id=2)
    server = serve(our_ech_server(ech_leaf, key.key))
    lines = go_client(server, pki, stale.config_list, allow_ech_rejection=True)
    assert [line["event"] for line in lines] == ["ech_rejected"]
    retry = lines[0]["retry_configs"]
    assert isinstance(retry, str)
    assert ECHConfigList.from_base64(retry).configs == (key.key.config,)
    first = server.outcome()
    assert isinstance(first, PeerAlert), f"expected Go's ech_required: {first!r}"
    assert first.description is AlertDescription.ECH_REQUIRED


@pytest.mark.requirement("ECH-23", "ECH-31", "ECH-58", "ECH-59")
def test_go_client_our_server_hrr_with_ech(
    pki: PKI, ech_leaf: Leaf, make_key: KeyFactory, go_peer: Path, serve: Serve
) -> None:
    """Our server accepting only P-384 sends HRR; ECH stays accepted.

    ECH-23/#56 (our HRR carries the hrr_accept_confirmation Go
    checks), ECH-58 (second ClientHelloOuter decrypted with the same HPKE
    context), ECH-59 (the final ServerHello confirms acceptance).

    Go 1.27's client compresses ``cookie`` into ClientHelloInner2 through
    ech_outer_extensions but copies only key_share into ClientHelloOuter2,
    so an HRR cookie would leave a dangling reference (ECH-31(a)). Our
    server keeps HRR state and sends no cookie when ECH is offered (RFC 8446
    §4.2.2 makes it optional), which is what this test relies on.
    """
    key = make_key(config_id=1)
    server = serve(our_ech_server(ech_leaf, key.key, groups=(NamedGroup.SECP384R1,)))
    results = go_client(server, pki, key.config_list)
    assert [r["event"] for r in results] == ["result"]
    assert results[0]["hrr"] is True
    assert results[0]["group"] == "P384"
    done = assert_accepted_by_ours(results[0], served(server))
    assert done.hello_retry is True
    assert done.group == NamedGroup.SECP384R1


# -- our httpx transport against Go's net/http -----------------------------------------


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1.1"])
def test_httpx_transport_against_go_http_server(
    pki: PKI, make_key: KeyFactory, go_server: GoServerFactory, http2: bool
) -> None:
    """ech.httpx with a stale config against Go (net/http, -http): one retry
    with Go's retry_configs, then ECH accepted by Go and the connection pooled."""
    served = make_key(config_id=1)
    stale = make_key(config_id=2)
    server = go_server(ech_keys=[served.path], http=True)
    transport = ECHTransport(
        config=client_config(pki), ech_configs=stale.config_list, http2=http2
    )
    url = f"https://127.0.0.1:{server.port}/"
    with httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client:
        responses = [
            client.get(url, extensions={"sni_hostname": SERVER_NAME}) for _ in range(3)
        ]
    version = "HTTP/2" if http2 else "HTTP/1.1"
    for response in responses:
        assert response.status_code == 200
        assert response.http_version == version
        assert response.extensions["ech_status"] == "accepted"
        assert response.extensions["retried"] is True
        assert response.extensions["outer_server_name"] == PUBLIC_NAME
        go_view = response.json()
        assert go_view["ech_accepted"] is True
        assert go_view["server_name"] == SERVER_NAME
        assert go_view["proto"] == ("HTTP/2.0" if http2 else "HTTP/1.1")
    rejected, accepted = (go_handshake(server) for _ in range(2))
    assert (rejected["ech_accepted"], accepted["ech_accepted"]) == (False, True)
    assert accepted["alpn"] == ("h2" if http2 else "http/1.1")
    handshakes = [e for e in server.events() if e.get("event") == "handshake"]
    assert len(handshakes) == 2, handshakes  # three requests, one pooled connection
