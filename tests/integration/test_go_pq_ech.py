"""ECH with the draft-ietf-hpke-pq KEMs against Go's crypto/tls, both roles.

Go 1.27.3 accepts ECH configs with ML-KEM-768 (0x0041), ML-KEM-1024
(0x0042), MLKEM768-P256 (0x0050), MLKEM1024-P384 (0x0051) and
MLKEM768-X25519 / X-Wing (0x647a). For each KEM: our client against the Go
server (``tlspeer server -ech-key``, reading the RFC 9934 files
:func:`ech.keys.write_ech_key` writes, PQ PKCS#8 included) and the Go client
(``tlspeer client -ech-config-list``) against our server; with the
X25519MLKEM768 TLS key share, with a HelloRetryRequest (the second
ClientHelloOuter sealed by the same HPKE context, RFC 9849 §6.1.5/§7.1.1),
and with retry_configs carrying the 1 KiB+ config after a rejection.

A missing Go toolchain fails these tests (never skips).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ech
from ech.blocking import connect
from ech.config import ECHConfigList
from ech.errors import PeerAlert
from ech.events import ECHStatus, HandshakeComplete
from ech.hpke import KEM, enc_length, public_key_length
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
"""The ECH public_name (client-facing server)."""

PAYLOAD = b"hello through post-quantum ECH"

PQ_KEMS = [
    KEM.ML_KEM_768,
    KEM.ML_KEM_1024,
    KEM.MLKEM768_P256,
    KEM.MLKEM1024_P384,
    KEM.MLKEM768_X25519,
]

OurServer = ThreadedServer[ServedConnection | BaseException]
Serve = Callable[[Callable[[socket.socket], Any]], OurServer]


def _kem_id(kem: KEM) -> str:
    return kem.name


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ech_leaf(pki: PKI) -> Leaf:
    """A leaf valid for both :data:`SERVER_NAME` and :data:`PUBLIC_NAME`."""
    return pki.files.leaf("pq-ech-leaf", SERVER_NAME, PUBLIC_NAME)


@pytest.fixture
def key_file(tmp_path: Path) -> Callable[[int, int], tuple[ECHKey, Path]]:
    """Generate an ECH key and write it as an RFC 9934 file."""

    def factory(kem_id: int, config_id: int) -> tuple[ECHKey, Path]:
        key = generate_ech_key(PUBLIC_NAME, kem_id=kem_id, config_id=config_id)
        path = tmp_path / f"ech-{kem_id:04x}-{config_id}.pem"
        write_ech_key(path, key)
        return key, path

    return factory


KeyFile = Callable[[int, int], tuple[ECHKey, Path]]


@pytest.fixture
def go_server(go_peer: Path, ech_leaf: Leaf) -> Iterator[Callable[..., GoServer]]:
    """Start Go servers presenting :func:`ech_leaf`; always stopped afterwards."""
    started: list[GoServer] = []

    def factory(**kwargs: Any) -> GoServer:
        server = GoServer([(ech_leaf.cert_path, ech_leaf.key_path)], **kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in reversed(started):
        server.stop()


def configs(key: ECHKey) -> ECHConfigList:
    """The ECHConfigList publishing ``key``."""
    return ECHConfigList((key.config,))


# -- our client, Go server -----------------------------------------------------------


def our_client(
    pki: PKI, port: int, config_list: ECHConfigList, *, ech_retry: bool = False
) -> tuple[HandshakeComplete, bool]:
    """Connect our client offering ECH, echo :data:`PAYLOAD`, close.

    Returns:
        The handshake and whether it used the server's retry_configs.
    """
    config = ech.ClientConfig(trust_store=(pki.ca.certificate,))
    tls = connect(
        "127.0.0.1",
        port,
        config,
        SERVER_NAME,
        ech_configs=config_list,
        ech_retry=ech_retry,
        timeout=IO_TIMEOUT,
    )
    try:
        tls.sendall(PAYLOAD)
        assert tls.recv_exactly(len(PAYLOAD)) == PAYLOAD
        done = tls.negotiated
        assert isinstance(done, HandshakeComplete)
        return done, tls.retried
    finally:
        tls.close()


def go_handshakes(server: GoServer, count: int = 1) -> list[Event]:
    """The Go server's next ``count`` handshake (or error) events."""
    return [
        server.wait_event(
            IO_TIMEOUT, predicate=lambda e: e.get("event") in ("handshake", "error")
        )
        for _ in range(count)
    ]


def assert_accepted(done: HandshakeComplete) -> None:
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.server_name == SERVER_NAME
    assert done.outer_server_name == PUBLIC_NAME


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_id)
def test_our_client_go_server(
    pki: PKI, key_file: KeyFile, go_server: Callable[..., GoServer], kem: KEM
) -> None:
    """Go accepts our ECH with a PQ KEM, over an X25519MLKEM768 key share.

    ``enc`` (1120-1665 bytes) and the 1 KiB+ config's HPKE info go through
    our ClientHelloOuter and Go's ECH server (RFC 9849 §6.1, §7.1).
    """
    key, path = key_file(kem, 1)
    assert len(key.private_key.public_key_bytes()) == public_key_length(kem)
    server = go_server(ech_keys=[path], curves=["X25519MLKEM768"])
    done, retried = our_client(pki, server.port, configs(key))
    assert_accepted(done)
    assert not retried
    assert done.hello_retry is False
    assert done.group == NamedGroup.X25519MLKEM768
    (event,) = go_handshakes(server)
    assert event["event"] == "handshake", event
    assert event["ech_accepted"] is True
    assert event["server_name"] == SERVER_NAME
    assert event["group"] == "X25519MLKEM768"
    assert event["hrr"] is False


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_id)
def test_our_client_go_server_hrr(
    pki: PKI, key_file: KeyFile, go_server: Callable[..., GoServer], kem: KEM
) -> None:
    """Go wants P-384, so HRR: our second ClientHelloOuter reuses the context."""
    key, path = key_file(kem, 2)
    server = go_server(ech_keys=[path], curves=["P384"])
    done, _ = our_client(pki, server.port, configs(key))
    assert_accepted(done)
    assert done.hello_retry is True
    assert done.group == NamedGroup.SECP384R1
    (event,) = go_handshakes(server)
    assert event["event"] == "handshake", event
    assert event["ech_accepted"] is True
    assert event["hrr"] is True
    assert event["group"] == "P384"


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_id)
def test_our_client_follows_go_pq_retry_configs(
    pki: PKI, key_file: KeyFile, go_server: Callable[..., GoServer], kem: KEM
) -> None:
    """A stale X25519 config is rejected; Go's PQ retry_configs then work.

    The 1 KiB+ ECHConfig travels in EncryptedExtensions (RFC 9849 §5, §6.1.6).
    """
    _, path = key_file(kem, 3)
    stale, _ = key_file(KEM.DHKEM_X25519_HKDF_SHA256, 4)
    server = go_server(ech_keys=[path])
    done, retried = our_client(pki, server.port, configs(stale), ech_retry=True)
    assert retried
    assert_accepted(done)
    events = go_handshakes(server, 2)  # rejected (then ech_required), accepted
    assert [e.get("ech_accepted") for e in events] == [False, True]
    assert [e.get("server_name") for e in events] == [PUBLIC_NAME, SERVER_NAME]


# -- Go client, our server -----------------------------------------------------------


def our_ech_server(
    leaf: Leaf, key: ECHKey, **kwargs: Any
) -> Callable[[socket.socket], ServedConnection | BaseException]:
    """Our echoing ECH server; handshake failures are returned, not raised."""
    config = ech.ServerConfig(certificates=(leaf.certified,), ech_keys=(key,), **kwargs)
    echo = echo_with_ours(config)

    def handler(conn: socket.socket) -> ServedConnection | BaseException:
        try:
            return echo(conn)
        except PeerAlert as error:
            return error

    return handler


def go_client(
    server: OurServer,
    pki: PKI,
    config_list: ECHConfigList,
    *,
    curves: list[str] | None = None,
    ech_retry: bool = False,
) -> list[Event]:
    """Run the Go client offering ECH; a failure also names what we saw."""
    try:
        return run_go_client(
            server.port,
            SERVER_NAME,
            pki.ca_path,
            curves=curves,
            ech_config_list=config_list.to_base64(),
            ech_retry=ech_retry,
            timeout=IO_TIMEOUT,
        )
    except GoClientError as error:
        ours = server.outcome()
        raise AssertionError(f"{error}; our server: {ours!r}") from error


def served(server: OurServer) -> HandshakeComplete:
    """The handshake of the next connection our server completed."""
    value = server.result()
    assert isinstance(value, ServedConnection), f"our server failed: {value!r}"
    assert value.received == b"" or len(value.received) == 1024
    return value.handshake


def assert_go_accepted(result: Event) -> None:
    assert result["event"] == "result"
    assert result["ech_accepted"] is True
    assert result["server_name"] == SERVER_NAME
    assert result["echo_ok"] is True


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_id)
def test_go_client_our_server(
    pki: PKI,
    ech_leaf: Leaf,
    key_file: KeyFile,
    go_peer: Path,
    serve: Serve,
    kem: KEM,
) -> None:
    """Our server opens Go's PQ ECH; X25519MLKEM768 is the TLS key share."""
    key, _ = key_file(kem, 5)
    server = serve(our_ech_server(ech_leaf, key))
    (result,) = go_client(server, pki, configs(key), curves=["X25519MLKEM768"])
    assert_go_accepted(result)
    assert result["group"] == "X25519MLKEM768"
    assert result["hrr"] is False
    done = served(server)
    assert_accepted(done)
    assert done.group == NamedGroup.X25519MLKEM768
    assert done.hello_retry is False


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_id)
def test_go_client_our_server_hrr(
    pki: PKI,
    ech_leaf: Leaf,
    key_file: KeyFile,
    go_peer: Path,
    serve: Serve,
    kem: KEM,
) -> None:
    """Our server wants P-384 only: HRR, then Go's second ClientHelloOuter
    (empty enc) opens with the same HPKE context (RFC 9849 §7.1.1).

    Our server omits the HRR cookie when ECH is offered.
    """
    key, _ = key_file(kem, 6)
    server = serve(our_ech_server(ech_leaf, key, groups=(NamedGroup.SECP384R1,)))
    (result,) = go_client(server, pki, configs(key))
    assert_go_accepted(result)
    assert result["hrr"] is True
    assert result["group"] == "P384"
    done = served(server)
    assert_accepted(done)
    assert done.hello_retry is True
    assert done.group == NamedGroup.SECP384R1


@pytest.mark.parametrize("kem", PQ_KEMS, ids=_kem_id)
def test_go_client_follows_our_pq_retry_configs(
    pki: PKI,
    ech_leaf: Leaf,
    key_file: KeyFile,
    go_peer: Path,
    serve: Serve,
    kem: KEM,
) -> None:
    """Go, holding a stale config, retries with our 1 KiB+ PQ retry_configs."""
    key, _ = key_file(kem, 7)
    stale, _ = key_file(KEM.DHKEM_X25519_HKDF_SHA256, 8)
    server = serve(our_ech_server(ech_leaf, key))
    lines = go_client(server, pki, configs(stale), ech_retry=True)
    assert [line["event"] for line in lines] == ["ech_rejected", "result"]
    retry = lines[0]["retry_configs"]
    assert isinstance(retry, str)
    assert [c.raw for c in ECHConfigList.from_base64(retry).configs] == [key.config.raw]
    assert lines[1]["ech_retried"] is True
    assert_go_accepted(lines[1])
    first = server.outcome()
    assert isinstance(first, PeerAlert), f"expected Go's ech_required: {first!r}"
    assert first.description is AlertDescription.ECH_REQUIRED
    assert_accepted(served(server))
    assert enc_length(kem) > 1000
