"""Interop with OpenSSL through Python's ``ssl`` module, both roles.

Python's ``ssl`` cannot choose TLS 1.3 cipher suites, so the suite is forced
from our side (our config offers or accepts only one). It cannot report the
negotiated group either: ``set_ecdh_curve`` restricts OpenSSL to one group
and the group is read from our side. OpenSSL cannot initiate a KeyUpdate,
but answers one that requests an update; our side sees that answer as a
:class:`ech.KeyUpdateReceived`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ech
import ech.aio
from ech.blocking import TLSSocket, connect
from ech.errors import BadCertificate, NoApplicationProtocol, UnexpectedMessage
from ech.tls.suites import DEFAULT_CIPHER_SUITES
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
    ssl_echo_exchange,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

Serve = Callable[[Callable[[socket.socket], Any]], ThreadedServer[Any]]

#: The suites both ends enable by default. OpenSSL enables CCM only by
#: configuration: test_openssl_tls13.py runs those with OPENSSL_CONF.
SUITES = DEFAULT_CIPHER_SUITES
G = ech.NamedGroup
#: Groups both sides implement, with OpenSSL's names for ``set_ecdh_curve``.
OPENSSL_GROUPS: dict[ech.NamedGroup, str] = {
    G.X25519: "X25519",
    G.SECP256R1: "prime256v1",
    G.SECP384R1: "secp384r1",
}


@pytest.fixture(scope="module", autouse=True)
def _require_openssl_tls13() -> None:
    if not ssl.HAS_TLSv1_3:
        pytest.fail(
            f"Python's ssl module ({ssl.OPENSSL_VERSION}) lacks TLS 1.3: "
            "install a Python built against OpenSSL >= 1.1.1"
        )


# -- OpenSSL peers -------------------------------------------------------------------


def ssl_server_context(
    leaf: Leaf,
    *,
    curve: str | None = None,
    alpn: list[str] | None = None,
    client_auth: ssl.VerifyMode = ssl.CERT_NONE,
    client_ca: Path | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3-only OpenSSL server context."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(leaf.cert_path, leaf.key_path)
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
    ctx.verify_mode = client_auth
    if curve is not None:
        ctx.set_ecdh_curve(curve)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def ssl_client_context(
    pki: PKI,
    *,
    curve: str | None = None,
    alpn: list[str] | None = None,
    cafile: Path | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3-only OpenSSL client context trusting the test CA."""
    ctx = ssl.create_default_context(cafile=str(cafile or pki.ca_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if curve is not None:
        ctx.set_ecdh_curve(curve)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


@dataclass
class SSLSide:
    """What the OpenSSL peer saw on one connection."""

    cipher: str
    version: str | None
    alpn: str | None
    session_reused: bool
    received: bytes
    session: ssl.SSLSession | None = None
    peer_certificate: bool = False


def ssl_echo_server(ctx: ssl.SSLContext) -> Callable[[socket.socket], SSLSide]:
    """A handler running OpenSSL's server: echo until the client closes."""

    def handler(conn: socket.socket) -> SSLSide:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            received = bytearray()
            while data := tls.recv(65536):
                received += data
                tls.sendall(data)
            cipher = tls.cipher()
            assert cipher is not None
            return SSLSide(
                cipher=cipher[0],
                version=tls.version(),
                alpn=tls.selected_alpn_protocol(),
                session_reused=bool(tls.session_reused),
                received=bytes(received),
                peer_certificate=bool(tls.getpeercert()),
            )

    return handler


def ssl_client(
    port: int,
    ctx: ssl.SSLContext,
    payload: bytes,
    *,
    session: ssl.SSLSession | None = None,
    chunk: int = 65536,
) -> SSLSide:
    """Connect with OpenSSL, echo ``payload`` (chunk by chunk), close cleanly."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVER_NAME, session=session) as tls,
    ):
        echoed = ssl_echo_exchange(tls, payload, chunk)
        assert echoed == payload, "OpenSSL client got a corrupted echo"
        cipher = tls.cipher()
        assert cipher is not None
        side = SSLSide(
            cipher=cipher[0],
            version=tls.version(),
            alpn=tls.selected_alpn_protocol(),
            session_reused=bool(tls.session_reused),
            received=echoed,
            session=tls.session,
        )
        tls.unwrap()  # close_notify both ways
        return side


def our_client_config(pki: PKI, **kwargs: Any) -> ech.ClientConfig:
    """Our client config trusting the test CA."""
    return ech.ClientConfig(trust_store=(pki.ca.certificate,), **kwargs)


def our_connect(
    port: int, config: ech.ClientConfig, *, session: ech.SessionTicket | None = None
) -> TLSSocket:
    """Connect our client to ``127.0.0.1:port`` asking for :data:`SERVER_NAME`."""
    return connect(
        "127.0.0.1", port, config, SERVER_NAME, session=session, timeout=IO_TIMEOUT
    )


def our_echo(
    port: int,
    config: ech.ClientConfig,
    payload: bytes,
    *,
    session: ech.SessionTicket | None = None,
) -> TLSSocket:
    """Connect, echo ``payload``, close; return the (closed) socket for its state."""
    tls = our_connect(port, config, session=session)
    try:
        assert echo_exchange(tls, payload) == payload
    finally:
        tls.close()
    return tls


def handshake_of(tls: TLSSocket) -> ech.HandshakeComplete:
    """The completed handshake of ``tls``."""
    assert tls.handshake is not None
    return tls.handshake


# -- our client -> OpenSSL server ---------------------------------------------------


@pytest.mark.parametrize("group", list(OPENSSL_GROUPS), ids=str)
@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_client_suite_and_group(
    pki: PKI, serve: Serve, suite: ech.CipherSuite, group: ech.NamedGroup
) -> None:
    server = serve(
        ssl_echo_server(ssl_server_context(pki.default, curve=OPENSSL_GROUPS[group]))
    )
    config = our_client_config(
        pki, cipher_suites=(suite,), groups=(group,), key_share_groups=(group,)
    )
    tls = our_echo(server.port, config, b"hello openssl")
    hs = handshake_of(tls)
    side: SSLSide = server.result()
    assert (hs.cipher_suite, hs.group, hs.hello_retry, hs.resumed) == (
        suite,
        group,
        False,
        False,
    )
    assert hs.version == side.version == "TLSv1.3"
    assert side.cipher == suite.name
    assert side.received == b"hello openssl"


def test_client_hello_retry(pki: PKI, serve: Serve) -> None:
    """Our default client sends only an X25519 share; OpenSSL wants secp384r1."""
    server = serve(ssl_echo_server(ssl_server_context(pki.default, curve="secp384r1")))
    tls = our_echo(server.port, our_client_config(pki), b"retry")
    hs = handshake_of(tls)
    assert hs.hello_retry is True
    assert hs.group == G.SECP384R1
    assert server.result().received == b"retry"


def test_client_alpn(pki: PKI, serve: Serve) -> None:
    server = serve(
        ssl_echo_server(ssl_server_context(pki.default, alpn=["http/1.1", "h2"]))
    )
    config = our_client_config(pki, alpn_protocols=("h2", "http/1.1"))
    tls = our_echo(server.port, config, b"alpn")
    side: SSLSide = server.result()
    # OpenSSL's server picks by its own preference.
    assert handshake_of(tls).alpn_protocol == side.alpn == "http/1.1"


def test_client_alpn_no_overlap(pki: PKI, serve: Serve) -> None:
    """OpenSSL's server ignores ALPN without overlap (no alert); so must we."""
    server = serve(ssl_echo_server(ssl_server_context(pki.default, alpn=["http/1.1"])))
    tls = our_echo(server.port, our_client_config(pki, alpn_protocols=("h2",)), b"x")
    side: SSLSide = server.result()
    assert handshake_of(tls).alpn_protocol is None
    assert side.alpn is None


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_client_resumption(pki: PKI, serve: Serve, suite: ech.CipherSuite) -> None:
    server = serve(ssl_echo_server(ssl_server_context(pki.default)))
    config = our_client_config(pki, cipher_suites=(suite,))
    first = our_echo(server.port, config, b"first")
    assert server.result().session_reused is False
    assert handshake_of(first).resumed is False
    assert first.session_tickets, "OpenSSL sent no NewSessionTicket we kept"

    second = our_echo(server.port, config, b"second", session=first.session_tickets[-1])
    side: SSLSide = server.result()
    assert handshake_of(second).resumed is True
    assert side.session_reused is True
    assert side.cipher == suite.name
    assert side.received == b"second"


def test_client_key_update(pki: PKI, serve: Serve) -> None:
    """We update our keys and request OpenSSL's; data flows both ways after."""
    server = serve(ssl_echo_server(ssl_server_context(pki.default)))
    tls = our_connect(server.port, our_client_config(pki))
    try:
        assert echo_exchange(tls, b"before") == b"before"
        tls.update_keys(request_peer=True)
        assert echo_exchange(tls, b"after one") == b"after one"
        tls.update_keys(request_peer=True)
        assert echo_exchange(tls, b"after two") == b"after two"
    finally:
        tls.close()
    assert key_updates(tls.events) == [
        ech.KeyUpdateReceived(update_requested=False),
        ech.KeyUpdateReceived(update_requested=False),
    ]
    assert server.result().received == b"beforeafter oneafter two"


def test_client_one_mib_echo(pki: PKI, serve: Serve) -> None:
    server = serve(ssl_echo_server(ssl_server_context(pki.default)))
    payload = pattern(1 << 20, seed=1)
    tls = our_connect(server.port, our_client_config(pki))
    try:
        assert echo_exchange(tls, payload, chunk=65536) == payload
    finally:
        tls.close()
    assert server.result().received == payload


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_client_verifies_certificate_key_types(
    pki: PKI, serve: Serve, key_type: str
) -> None:
    server = serve(ssl_echo_server(ssl_server_context(pki.leaves[key_type])))
    tls = our_echo(server.port, our_client_config(pki), key_type.encode())
    assert handshake_of(tls).server_name == SERVER_NAME
    assert server.result().received == key_type.encode()


@pytest.mark.parametrize("which", ["wrong_name", "untrusted"])
def test_client_rejects_bad_certificate(pki: PKI, serve: Serve, which: str) -> None:
    leaf = pki.wrong_name if which == "wrong_name" else pki.untrusted
    server = serve(ssl_echo_server(ssl_server_context(leaf)))
    with pytest.raises(BadCertificate):
        our_connect(server.port, our_client_config(pki))
    outcome = server.outcome()
    assert isinstance(outcome, ssl.SSLError), outcome
    assert "BAD_CERTIFICATE" in str(outcome).upper().replace(" ", "_"), outcome


@pytest.mark.parametrize(
    ("shares", "hello_retry"),
    [((G.X25519MLKEM768, G.X25519), False), ((G.X25519MLKEM768,), True)],
    ids=["mlkem+x25519", "mlkem-only"],
)
def test_client_mlkem_share_against_openssl_without_mlkem(
    pki: PKI, serve: Serve, shares: tuple[ech.NamedGroup, ...], hello_retry: bool
) -> None:
    """OpenSSL 3.0 ignores the X25519MLKEM768 share: X25519, maybe after HRR."""
    server = serve(ssl_echo_server(ssl_server_context(pki.default)))
    tls = our_echo(server.port, our_client_config(pki, key_share_groups=shares), b"pq")
    hs = handshake_of(tls)
    assert (hs.group, hs.hello_retry) == (G.X25519, hello_retry)
    assert server.result().received == b"pq"


def test_client_resumption_with_hello_retry(pki: PKI, serve: Serve) -> None:
    """The PSK binder of the second ClientHello covers the HelloRetryRequest."""
    server = serve(ssl_echo_server(ssl_server_context(pki.default, curve="secp384r1")))
    config = our_client_config(pki)
    first = our_echo(server.port, config, b"first")
    assert server.result().session_reused is False
    assert first.session_tickets

    second = our_echo(server.port, config, b"second", session=first.session_tickets[0])
    hs = handshake_of(second)
    assert (hs.resumed, hs.hello_retry, hs.group) == (True, True, G.SECP384R1)
    assert server.result().session_reused is True


def test_client_without_compatibility_mode(pki: PKI, serve: Serve) -> None:
    server = serve(ssl_echo_server(ssl_server_context(pki.default, curve="secp384r1")))
    config = our_client_config(pki, compatibility_mode=False)
    tls = our_echo(server.port, config, b"no ccs")
    assert handshake_of(tls).hello_retry is True
    assert server.result().received == b"no ccs"


def test_client_record_padding(pki: PKI, serve: Serve) -> None:
    """OpenSSL strips the zero padding we add to every protected record."""
    server = serve(ssl_echo_server(ssl_server_context(pki.default)))
    config = our_client_config(pki, record_padding=lambda _type, _length: 200)
    payload = pattern(40_000, seed=6)
    assert our_echo(server.port, config, payload).handshake is not None
    assert server.result().received == payload


def test_client_intermediate_chain(pki: PKI, serve: Serve) -> None:
    server = serve(ssl_echo_server(ssl_server_context(pki.chained)))
    tls = our_echo(server.port, our_client_config(pki), b"chain")
    assert handshake_of(tls).server_name == SERVER_NAME
    assert server.result().received == b"chain"


def test_client_answers_optional_certificate_request(pki: PKI, serve: Serve) -> None:
    """OpenSSL asks for a client certificate; we send an empty Certificate."""
    ctx = ssl_server_context(
        pki.default, client_auth=ssl.CERT_OPTIONAL, client_ca=pki.ca_path
    )
    server = serve(ssl_echo_server(ctx))
    our_echo(server.port, our_client_config(pki), b"anonymous")
    side: SSLSide = server.result()
    assert side.received == b"anonymous"
    assert side.peer_certificate is False


def test_client_sees_certificate_required_alert(pki: PKI, serve: Serve) -> None:
    ctx = ssl_server_context(
        pki.default, client_auth=ssl.CERT_REQUIRED, client_ca=pki.ca_path
    )
    server = serve(ssl_echo_server(ctx))
    tls = our_connect(server.port, our_client_config(pki))
    try:
        with pytest.raises(ech.PeerAlert) as info:
            tls.recv()
    finally:
        tls.close()
    assert info.value.description == ech.AlertDescription.CERTIFICATE_REQUIRED
    assert isinstance(server.outcome(), ssl.SSLError)


def test_client_big_certificate(pki: PKI, serve: Serve) -> None:
    """OpenSSL's Certificate message spans several records; we reassemble it."""
    assert len(pki.big.certified.chain_der[0]) > 16384
    server = serve(ssl_echo_server(ssl_server_context(pki.big)))
    tls = our_echo(server.port, our_client_config(pki), b"big")
    assert handshake_of(tls).server_name == SERVER_NAME
    assert server.result().received == b"big"


def test_client_ip_address(pki: PKI, serve: Serve) -> None:
    """Connecting to an IP: no SNI is sent, the certificate's IP SAN is checked."""
    server = serve(ssl_echo_server(ssl_server_context(pki.ip)))
    tls = connect("127.0.0.1", server.port, our_client_config(pki), timeout=IO_TIMEOUT)
    try:
        assert echo_exchange(tls, b"ip") == b"ip"
    finally:
        tls.close()
    assert handshake_of(tls).server_name == "127.0.0.1"
    assert server.result().received == b"ip"
    with pytest.raises(BadCertificate):
        connect(
            "127.0.0.1",
            server.port,
            our_client_config(pki),
            "127.0.0.2",
            timeout=IO_TIMEOUT,
        )
    assert isinstance(server.outcome(), ssl.SSLError)


# -- OpenSSL client -> our server ---------------------------------------------------


def our_server_config(
    pki: PKI, leaf: Leaf | None = None, **kwargs: Any
) -> ech.ServerConfig:
    """Our server config with one certificate (default: the P-256 leaf)."""
    return ech.ServerConfig(certificates=((leaf or pki.default).certified,), **kwargs)


@pytest.mark.parametrize("group", list(OPENSSL_GROUPS), ids=str)
@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_server_suite_and_group(
    pki: PKI, serve: Serve, suite: ech.CipherSuite, group: ech.NamedGroup
) -> None:
    server = serve(
        echo_with_ours(our_server_config(pki, cipher_suites=(suite,), groups=(group,)))
    )
    side = ssl_client(
        server.port, ssl_client_context(pki, curve=OPENSSL_GROUPS[group]), b"hi"
    )
    ours: ServedConnection = server.result()
    hs = ours.handshake
    assert (hs.cipher_suite, hs.group, hs.hello_retry, hs.resumed) == (
        suite,
        group,
        False,
        False,
    )
    assert hs.server_name == SERVER_NAME
    assert side.cipher == suite.name
    assert side.version == "TLSv1.3"
    assert ours.received == b"hi"


def test_server_hello_retry(pki: PKI, serve: Serve) -> None:
    """OpenSSL's client sends an X25519 share; our server wants secp384r1."""
    server = serve(echo_with_ours(our_server_config(pki, groups=(G.SECP384R1,))))
    side = ssl_client(server.port, ssl_client_context(pki), b"retry")
    hs = server.result().handshake
    assert hs.hello_retry is True
    assert hs.group == G.SECP384R1
    assert side.received == b"retry"


def test_server_alpn(pki: PKI, serve: Serve) -> None:
    server = serve(
        echo_with_ours(our_server_config(pki, alpn_protocols=("h2", "http/1.1")))
    )
    side = ssl_client(
        server.port, ssl_client_context(pki, alpn=["http/1.1", "h2"]), b"a"
    )
    # Our server picks by its own preference.
    assert server.result().handshake.alpn_protocol == side.alpn == "h2"


def test_server_alpn_mismatch(pki: PKI, serve: Serve) -> None:
    server = serve(echo_with_ours(our_server_config(pki, alpn_protocols=("h2",))))
    with pytest.raises(ssl.SSLError, match=r"(?i)no.application.protocol"):
        ssl_client(server.port, ssl_client_context(pki, alpn=["http/1.1"]), b"a")
    outcome = server.outcome()
    assert isinstance(outcome, NoApplicationProtocol), outcome


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_server_resumption(pki: PKI, serve: Serve, suite: ech.CipherSuite) -> None:
    server = serve(echo_with_ours(our_server_config(pki, cipher_suites=(suite,))))
    ctx = ssl_client_context(pki)
    first = ssl_client(server.port, ctx, b"first")
    assert first.session_reused is False
    assert server.result().handshake.resumed is False
    assert first.session is not None
    assert first.session.has_ticket

    second = ssl_client(server.port, ctx, b"second", session=first.session)
    ours: ServedConnection = server.result()
    assert second.session_reused is True
    assert second.cipher == suite.name
    assert ours.handshake.resumed is True
    assert ours.received == b"second"


def test_server_key_update(pki: PKI, serve: Serve) -> None:
    """Our server updates its keys right away; OpenSSL answers on its next write."""
    server = serve(echo_with_ours(our_server_config(pki), update_keys=True))
    payload = pattern(3000, seed=2)
    side = ssl_client(server.port, ssl_client_context(pki), payload, chunk=1000)
    ours: ServedConnection = server.result()
    assert side.received == ours.received == payload
    assert ours.key_updates == [ech.KeyUpdateReceived(update_requested=False)]


def test_server_one_mib_echo(pki: PKI, serve: Serve) -> None:
    server = serve(echo_with_ours(our_server_config(pki)))
    payload = pattern(1 << 20, seed=3)
    side = ssl_client(server.port, ssl_client_context(pki), payload, chunk=65536)
    assert side.received == payload
    assert server.result().received == payload


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_server_certificate_key_types(pki: PKI, serve: Serve, key_type: str) -> None:
    """OpenSSL's client verifies our CertificateVerify for each key type."""
    server = serve(echo_with_ours(our_server_config(pki, pki.leaves[key_type])))
    side = ssl_client(server.port, ssl_client_context(pki), key_type.encode())
    assert side.received == key_type.encode()
    assert server.result().handshake.server_name == SERVER_NAME


def test_server_default_groups_with_openssl(pki: PKI, serve: Serve) -> None:
    """Our server prefers X25519MLKEM768, but takes the X25519 share OpenSSL sent."""
    server = serve(echo_with_ours(our_server_config(pki)))
    ssl_client(server.port, ssl_client_context(pki), b"groups")
    hs = server.result().handshake
    assert (hs.group, hs.hello_retry) == (G.X25519, False)


def test_server_resumption_with_hello_retry(pki: PKI, serve: Serve) -> None:
    server = serve(echo_with_ours(our_server_config(pki, groups=(G.SECP384R1,))))
    ctx = ssl_client_context(pki)
    first = ssl_client(server.port, ctx, b"first")
    assert server.result().handshake.hello_retry is True
    second = ssl_client(server.port, ctx, b"second", session=first.session)
    hs = server.result().handshake
    assert (hs.resumed, hs.hello_retry) == (True, True)
    assert second.session_reused is True


def test_server_selects_certificate_by_sni(pki: PKI, serve: Serve) -> None:
    """The first certificate names only other.test; SNI picks the second."""
    config = ech.ServerConfig(
        certificates=(pki.wrong_name.certified, pki.leaves["ed25519"].certified)
    )
    server = serve(echo_with_ours(config))
    side = ssl_client(server.port, ssl_client_context(pki), b"sni")
    assert side.received == b"sni"
    assert server.result().handshake.server_name == SERVER_NAME


def test_server_intermediate_chain(pki: PKI, serve: Serve) -> None:
    server = serve(echo_with_ours(our_server_config(pki, pki.chained)))
    side = ssl_client(server.port, ssl_client_context(pki), b"chain")
    assert side.received == server.result().received == b"chain"


def test_server_record_padding(pki: PKI, serve: Serve) -> None:
    config = our_server_config(pki, record_padding=lambda _type, _length: 1000)
    server = serve(echo_with_ours(config))
    payload = pattern(40_000, seed=7)
    assert ssl_client(server.port, ssl_client_context(pki), payload).received == payload
    assert server.result().received == payload


def test_server_sees_openssl_client_reject_certificate(pki: PKI, serve: Serve) -> None:
    """OpenSSL's client rejects our certificate; our server must report its alert.

    OpenSSL sends that alert (unknown_ca) *unprotected*: it switches its write
    key to the handshake key only when it sends its Finished. OpenSSL's own
    server tolerates plaintext alerts here (ENC_READ_STATE_ALLOW_PLAIN_ALERTS).
    """
    server = serve(echo_with_ours(our_server_config(pki, pki.untrusted)))
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl_client(server.port, ssl_client_context(pki), b"x")
    outcome = server.outcome()
    assert not isinstance(outcome, UnexpectedMessage | OSError), (
        f"our server failed with {outcome!r} instead of reporting the client's alert"
    )
    assert isinstance(outcome, ech.PeerAlert), outcome
    assert outcome.description == ech.AlertDescription.UNKNOWN_CA


def test_server_big_certificate(pki: PKI, serve: Serve) -> None:
    """We split our > 16 KiB Certificate message across records."""
    server = serve(echo_with_ours(our_server_config(pki, pki.big)))
    assert ssl_client(server.port, ssl_client_context(pki), b"big").received == b"big"
    assert server.result().handshake.server_name == SERVER_NAME


def test_server_without_sni(pki: PKI, serve: Serve) -> None:
    """OpenSSL sends no SNI for an IP address; the certificate's IP SAN verifies."""
    server = serve(echo_with_ours(our_server_config(pki, pki.ip)))
    ctx = ssl_client_context(pki)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert ssl_echo_exchange(tls, b"no sni") == b"no sni"
        tls.unwrap()
    ours: ServedConnection = server.result()
    assert ours.handshake.server_name is None
    assert ours.received == b"no sni"


# -- asyncio adapter ------------------------------------------------------------------


def test_aio_client_against_openssl_server(pki: PKI, serve: Serve) -> None:
    server = serve(ssl_echo_server(ssl_server_context(pki.default, alpn=["h2"])))
    payload = pattern(200_000, seed=4)

    async def main() -> tuple[ech.HandshakeComplete, bytes, int]:
        stream = await ech.aio.open_connection(
            "127.0.0.1",
            server.port,
            our_client_config(pki, alpn_protocols=("h2",)),
            SERVER_NAME,
        )
        try:
            await stream.send(payload)
            echoed = bytearray()
            while len(echoed) < len(payload):
                data = await stream.recv()
                assert data, "server closed before the echo completed"
                echoed += data
        finally:
            await stream.close()
        assert stream.handshake is not None
        return stream.handshake, bytes(echoed), len(stream.session_tickets)

    async def bounded() -> tuple[ech.HandshakeComplete, bytes, int]:
        return await asyncio.wait_for(main(), IO_TIMEOUT)

    hs, echoed, tickets = asyncio.run(bounded())
    side: SSLSide = server.result()
    assert echoed == payload
    assert side.received == payload
    assert hs.alpn_protocol == side.alpn == "h2"
    assert side.cipher == hs.cipher_suite.name
    assert tickets >= 1


def test_aio_server_with_openssl_client(pki: PKI) -> None:
    config = our_server_config(pki, alpn_protocols=("h2",))
    seen: list[ech.HandshakeComplete] = []
    payload = pattern(300_000, seed=5)

    async def handler(stream: ech.aio.TLSStream) -> None:
        assert stream.handshake is not None
        seen.append(stream.handshake)
        while data := await stream.recv():
            await stream.send(data)

    async def main() -> SSLSide:
        server = await ech.aio.start_server(handler, "127.0.0.1", 0, config)
        try:
            port = server.sockets[0].getsockname()[1]
            ctx = ssl_client_context(pki, alpn=["h2"])
            return await asyncio.wait_for(
                asyncio.to_thread(ssl_client, port, ctx, payload), IO_TIMEOUT
            )
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), IO_TIMEOUT)

    side = asyncio.run(main())
    assert side.received == payload
    assert side.alpn == "h2"
    assert len(seen) == 1
    assert seen[0].alpn_protocol == "h2"
    assert seen[0].cipher_suite.name == side.cipher
