"""TLS 1.3 completeness against Go's crypto/tls (``interop/go``), both roles.

Beyond test_go_interop.py: client certificates each way (Go's server with
``ClientCAs`` and RequireAndVerifyClientCert or VerifyClientCertIfGiven, Go's
client with ``Certificates``), and secp521r1 with P-521 certificates. Go has
no CCM suites, no X448, no finite-field groups, no Ed448 and no RSASSA-PSS
keys in certificates, and no 0-RTT: those are tested with OpenSSL and NSS.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ech
from ech.blocking import connect
from ech.config import ECHConfigList
from ech.errors import CertificateRequired
from ech.events import ECHStatus
from ech.keys import ECHKey, generate_ech_key, write_ech_key
from ech.pki import TestCA
from interop.go_peer import GoClientError, GoServer
from tests.harness.pki import Leaf
from tests.integration.conftest import (
    IO_TIMEOUT,
    PKI,
    SERVER_NAME,
    ServedConnection,
    ThreadedServer,
    echo_exchange,
    echo_with_ours,
)
from tests.integration.test_go_interop import (
    GoServerFactory,
    go_client,
    go_handshake,
    handshake_of,
    only_result,
    our_client_config,
    our_connect,
    our_echo,
    our_server_config,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

Serve = Callable[[Callable[[socket.socket], Any]], ThreadedServer[Any]]
G = ech.NamedGroup


@dataclass(frozen=True)
class Extra:
    """Leaves for these tests, on disk for Go."""

    client: Leaf
    stranger: Leaf
    p521: Leaf


@pytest.fixture(scope="module")
def extra(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Extra:
    directory = tmp_path_factory.mktemp("go-tls13")

    def leaf(ca: TestCA, certified: ech.CertifiedKey, stem: str) -> Leaf:
        return Leaf(certified, *ca.write(directory, certified, stem))

    stranger_ca = TestCA.create("stranger CA")
    return Extra(
        client=leaf(pki.ca, pki.ca.issue("client.test", usage="client"), "client"),
        stranger=leaf(
            stranger_ca, stranger_ca.issue("client.test", usage="client"), "stranger"
        ),
        p521=leaf(pki.ca, pki.ca.issue(SERVER_NAME, key_type="p521"), "p521"),
    )


@pytest.fixture
def go_servers(go_peer: Path) -> Iterator[GoServerFactory]:
    """Start :class:`GoServer` instances that are always stopped afterwards."""
    started: list[GoServer] = []

    def factory(leaf: Leaf, **kwargs: Any) -> GoServer:
        server = GoServer([(leaf.cert_path, leaf.key_path)], **kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in reversed(started):
        server.stop()


# -- client certificates --------------------------------------------------------------


def test_our_client_certificate_to_go(
    pki: PKI, extra: Extra, go_servers: GoServerFactory
) -> None:
    server = go_servers(pki.default, client_ca=pki.ca_path)
    config = our_client_config(pki, client_certificate=extra.client.certified)
    our_echo(server, config)
    assert go_handshake(server)["peer_subject"] == "CN=client.test"


def test_go_requires_a_certificate_we_do_not_have(
    pki: PKI, go_servers: GoServerFactory
) -> None:
    """Go answers an empty Certificate with certificate_required (alert 116)."""
    server = go_servers(pki.default, client_ca=pki.ca_path)
    tls = our_connect(server, our_client_config(pki))
    try:
        with pytest.raises(ech.PeerAlert) as info:
            tls.recv()
    finally:
        tls.close()
    assert info.value.description == ech.AlertDescription.CERTIFICATE_REQUIRED


def test_go_requests_and_we_send_nothing(pki: PKI, go_servers: GoServerFactory) -> None:
    server = go_servers(pki.default, client_ca=pki.ca_path, client_auth="request")
    our_echo(server, our_client_config(pki))
    assert "peer_subject" not in go_handshake(server)


def _our_auth_server(pki: PKI) -> ech.ServerConfig:
    return our_server_config(
        pki, client_ca=(pki.ca.certificate,), require_client_certificate=True
    )


def test_go_client_certificate_to_our_server(
    pki: PKI, serve: Serve, extra: Extra, go_peer: Path
) -> None:
    server = serve(echo_with_ours(_our_auth_server(pki)))
    cert = (extra.client.cert_path, extra.client.key_path)
    only_result(go_client(server.port, pki, client_certificate=cert))
    ours: ServedConnection = server.result()
    assert ours.handshake.client_certificate_subject == "CN=client.test"
    assert ours.handshake.client_certificate_chain[-1] == pki.ca.certificate


def test_go_client_without_certificate_gets_certificate_required(
    pki: PKI, serve: Serve, go_peer: Path
) -> None:
    server = serve(echo_with_ours(_our_auth_server(pki)))
    with pytest.raises(GoClientError, match="certificate required"):
        go_client(server.port, pki)
    assert isinstance(server.outcome(), CertificateRequired)


def test_go_client_keeps_a_certificate_the_request_does_not_name(
    pki: PKI, serve: Serve, extra: Extra, go_peer: Path
) -> None:
    """Go sends a certificate only if it chains to one of the request's
    certificate_authorities (RFC 8446 §4.2.4; Go's SupportsCertificate):
    with one from another CA it sends none, and we answer
    certificate_required. (OpenSSL sends it anyway: unknown_ca there.)"""
    server = serve(echo_with_ours(_our_auth_server(pki)))
    cert = (extra.stranger.cert_path, extra.stranger.key_path)
    with pytest.raises(GoClientError, match="certificate required"):
        go_client(server.port, pki, client_certificate=cert)
    assert isinstance(server.outcome(), CertificateRequired)


# -- secp521r1 and P-521 certificates -------------------------------------------------


def test_client_p521_group_and_key_with_go(
    pki: PKI, extra: Extra, go_servers: GoServerFactory
) -> None:
    server = go_servers(extra.p521, curves=["P521"])
    config = our_client_config(
        pki, groups=(G.SECP521R1,), key_share_groups=(G.SECP521R1,)
    )
    hs = handshake_of(our_echo(server, config))
    event = go_handshake(server)
    assert hs.group == G.SECP521R1
    assert event["group"] == "P521"


def test_server_p521_group_and_key_with_go(
    pki: PKI, serve: Serve, extra: Extra, go_peer: Path
) -> None:
    config = our_server_config(pki, extra.p521, groups=(G.SECP521R1,))
    server = serve(echo_with_ours(config))
    result = only_result(go_client(server.port, pki, curves=["P521"]))
    assert result["group"] == "P521"
    assert server.result().handshake.group == G.SECP521R1


# -- client certificates with ECH (the inner handshake) -------------------------------

PUBLIC_NAME = "public.test"


@pytest.fixture
def ech_setup(pki: PKI, tmp_path: Path) -> tuple[Leaf, ECHKey, Path]:
    """A leaf for both names, and an ECH key for PUBLIC_NAME in an RFC 9934 file."""
    certified = pki.ca.issue(SERVER_NAME, PUBLIC_NAME)
    leaf = Leaf(certified, *pki.ca.write(tmp_path, certified, "ech-leaf"))
    key = generate_ech_key(PUBLIC_NAME)
    path = tmp_path / "ech.pem"
    write_ech_key(path, key)
    return leaf, key, path


def test_our_client_certificate_to_go_with_ech(
    pki: PKI,
    extra: Extra,
    go_servers: GoServerFactory,
    ech_setup: tuple[Leaf, ECHKey, Path],
) -> None:
    """CertificateRequest and our certificate travel in the inner handshake."""
    leaf, key, path = ech_setup
    server = go_servers(leaf, client_ca=pki.ca_path, ech_keys=[path])
    config = our_client_config(pki, client_certificate=extra.client.certified)
    tls = connect(
        "127.0.0.1", server.port, config, SERVER_NAME,
        ech_configs=ECHConfigList((key.config,)), timeout=IO_TIMEOUT,
    )  # fmt: skip
    with tls:
        assert echo_exchange(tls, b"inner") == b"inner"
        assert tls.negotiated.ech_status is ECHStatus.ACCEPTED
    event = go_handshake(server)
    assert event["ech_accepted"] is True
    assert event["peer_subject"] == "CN=client.test"


def test_go_client_certificate_to_our_server_with_ech(
    pki: PKI,
    serve: Serve,
    extra: Extra,
    go_peer: Path,
    ech_setup: tuple[Leaf, ECHKey, Path],
) -> None:
    leaf, key, _ = ech_setup
    config = ech.ServerConfig(
        certificates=(leaf.certified,),
        ech_keys=(key,),
        client_ca=(pki.ca.certificate,),
        require_client_certificate=True,
    )
    server = serve(echo_with_ours(config))
    cert = (extra.client.cert_path, extra.client.key_path)
    configs = ECHConfigList((key.config,)).to_base64()
    result = only_result(
        go_client(server.port, pki, client_certificate=cert, ech_config_list=configs)
    )
    assert result["ech_accepted"] is True
    done = server.result().handshake
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.outer_server_name == PUBLIC_NAME
    assert done.client_certificate_subject == "CN=client.test"
