"""Split mode (RFC 9849 §3.1, §7.1): our client-facing server relays to a backend.

The front end holds the ECH key and certificates for the public name only;
the backend holds the inner name's certificate and runs in backend mode.
Backends: ours (``ServerConfig(ech_backend=True)``) and Go's crypto/tls,
which answers inner ECH extensions as a backend. Each with and without a
HelloRetryRequest from the backend, the case where the front end must
decrypt the second ClientHelloOuter with the same HPKE context (ECH-83 to ECH-85).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ech import ClientConfig, NamedGroup, ServerConfig
from ech.blocking import connect
from ech.config import ECHConfigList
from ech.errors import DecryptError, IllegalParameter, MissingExtension
from ech.events import ECHStatus, HandshakeComplete
from ech.extension import parse_client_hello_extension
from ech.http import encode_request
from ech.http import fetch as fetch_http
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.serve.status_page import serve_status
from ech.server.connection import ServerConnection
from ech.server.events import ForwardToBackend
from ech.server.split import RelayState, SplitRelay
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import ExtensionType
from ech.tls.messages import ClientHello
from ech.tls.wire import Reader
from interop.go_peer import GoServer, build_peer
from tests.harness.http import status_json
from tests.harness.loop import BackgroundLoop
from tests.harness.pki import TestPKI

pytestmark = pytest.mark.interop

PUBLIC, SECRET, LOCAL = "public.example", "secret.example", "local.example"


@dataclass(frozen=True)
class PKI:
    """Certificates and the ECH key of the test deployment."""

    ca: TestCA
    public: CertifiedKey
    secret: CertifiedKey
    local: CertifiedKey
    secret_files: tuple[Path, Path]
    key: ECHKey


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    files = TestPKI.create(tmp_path_factory.mktemp("split"))
    secret = files.leaf("secret", SECRET)
    return PKI(
        ca=files.ca,
        public=files.ca.issue(PUBLIC),
        secret=secret.certified,
        local=files.ca.issue(LOCAL),
        secret_files=(secret.cert_path, secret.key_path),
        key=generate_ech_key(PUBLIC),
    )


def front_config(pki: PKI, backend_port: int) -> ServerConfig:
    return ServerConfig(
        certificates=(pki.public, pki.local),
        alpn_protocols=("http/1.1",),
        ech_keys=(pki.key,),
        backends={SECRET: ("127.0.0.1", backend_port)},
    )


def fetch(
    pki: PKI, port: int, name: str, *, echo: bool = False
) -> tuple[HandshakeComplete, bytes]:
    """GET / with ECH: the response body, or with ``echo`` the first bytes back."""
    config = ClientConfig(
        trust_store=(pki.ca.certificate,), alpn_protocols=("http/1.1",)
    )
    configs = ECHConfigList((pki.key.config,))
    with connect("127.0.0.1", port, config, name, ech_configs=configs) as tls:
        if echo:  # Go's test server echoes what it receives
            tls.sendall(encode_request("GET", "/", host=name, close=False))
            return tls.negotiated, tls.recv()
        response = fetch_http(tls, "/", host=name, close=False)
        return tls.negotiated, response.body


@pytest.mark.requirement("ECH-80", "ECH-83", "ECH-88", "ECH-89", "ECH-90")
@pytest.mark.parametrize("hrr", [False, True], ids=["no-hrr", "hrr"])
def test_our_front_end_relays_to_our_backend(pki: PKI, hrr: bool) -> None:
    """ECH-80, ECH-83, ECH-88 to ECH-90: forward CHI, relay, backend confirms."""
    groups = (NamedGroup.SECP384R1,) if hrr else (NamedGroup.X25519,)
    backend = ServerConfig(
        certificates=(pki.secret,),
        alpn_protocols=("http/1.1",),
        ech_backend=True,
        groups=groups,
    )
    with BackgroundLoop() as run:
        backend_port = run.start_server(serve_status, backend)
        front_port = run.start_server(serve_status, front_config(pki, backend_port))
        hs, data = fetch(pki, front_port, SECRET)
        assert (hs.ech_status, hs.server_name, hs.hello_retry) == (
            ECHStatus.ACCEPTED,
            SECRET,
            hrr,
        )
        seen = status_json(data)  # the backend's page: it terminated TLS
        assert (seen["ech_status"], seen["server_name"]) == ("accepted", SECRET)
        assert seen["hello_retry"] is hrr
        # A name without a backend is served by the front end (shared mode).
        hs, data = fetch(pki, front_port, LOCAL)
        assert (hs.ech_status, status_json(data)["server_name"]) == (
            ECHStatus.ACCEPTED,
            LOCAL,
        )


@pytest.mark.parametrize("hrr", [False, True], ids=["no-hrr", "hrr"])
def test_our_front_end_relays_to_go_backend(pki: PKI, hrr: bool) -> None:
    """Go's server answers the inner hello as a backend (§7.2); we relay it."""
    build_peer()
    cert, key = pki.secret_files
    curves = ["P384"] if hrr else None
    with GoServer([(cert, key)], curves=curves) as go, BackgroundLoop() as run:
        front_port = run.start_server(serve_status, front_config(pki, go.port))
        hs, data = fetch(pki, front_port, SECRET, echo=True)
        assert (hs.ech_status, hs.server_name, hs.hello_retry) == (
            ECHStatus.ACCEPTED,
            SECRET,
            hrr,
        )
        assert data  # Go echoes what we sent
        event = go.wait_event(timeout=10, event="handshake")
        # Our client verified Go's accept_confirmation (ech_status above).
        # Go sets ConnectionState.ECHAccepted only when it decrypted the
        # outer hello itself, so as a backend it reports false.
        assert event["server_name"] == SECRET
        assert event["hrr"] is hrr


def _forward(pki: PKI) -> tuple[ForwardToBackend, ClientHello]:
    """Run a client's first flight into a split-mode front end."""
    from ech import ClientConnection

    client = ClientConnection(
        ClientConfig(trust_store=(pki.ca.certificate,)),
        SECRET,
        ech_configs=ECHConfigList((pki.key.config,)),
    )
    client.start()
    first = client.data_to_send()
    server = ServerConnection(front_config(pki, 1))
    (event,) = server.receive_data(first)
    assert isinstance(event, ForwardToBackend)
    r = Reader(first)
    r.raw(5)
    r.u8()
    outer = ClientHello.parse(r.opaque(3))
    return event, outer


def _record(hello: ClientHello) -> bytes:
    body = hello.encode()
    message = bytes([1]) + len(body).to_bytes(3, "big") + body
    return bytes([22, 3, 3]) + len(message).to_bytes(2, "big") + message


@pytest.mark.requirement("ECH-30", "ECH-80")
def test_relay_forwards_the_reconstructed_inner_hello(pki: PKI) -> None:
    """ECH-80: the backend gets ClientHelloInner, never the outer hello."""
    forward, outer = _forward(pki)
    relay = SplitRelay(forward)
    to_backend = relay.data_to_backend()
    assert SECRET.encode() in to_backend
    assert forward.server_name == SECRET
    assert forward.outer_server_name == PUBLIC
    r = Reader(to_backend)
    r.raw(5)
    r.u8()
    inner = ClientHello.parse(r.opaque(3))
    marker = inner.extension(ExtensionType.ENCRYPTED_CLIENT_HELLO)
    assert marker is not None
    assert parse_client_hello_extension(marker) is None
    assert inner.legacy_session_id == outer.legacy_session_id  # ECH-30


def _after_hrr(pki: PKI) -> tuple[SplitRelay, ClientHello]:
    forward, outer = _forward(pki)
    relay = SplitRelay(forward)
    relay.data_to_backend()
    hrr_random = bytes.fromhex(
        "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
    )
    from ech.tls.extensions import Extension
    from ech.tls.messages import ServerHello

    hrr = ServerHello(
        hrr_random, outer.legacy_session_id, 0x1301, (Extension(43, b"\x03\x04"),)
    )
    body = hrr.encode()
    message = bytes([2]) + len(body).to_bytes(3, "big") + body
    relay.backend_data(bytes([22, 3, 3]) + len(message).to_bytes(2, "big") + message)
    assert relay.state is RelayState.WAIT_SECOND_HELLO
    return relay, outer


@pytest.mark.requirement("ECH-83")
def test_second_hello_without_ech_is_missing_extension(pki: PKI) -> None:
    """ECH-83: CHO2 must carry ECH after an accepted CHO1."""
    relay, outer = _after_hrr(pki)
    with pytest.raises(MissingExtension):
        relay.client_data(
            _record(outer.without_extension(ExtensionType.ENCRYPTED_CLIENT_HELLO))
        )
    assert relay.data_to_client().endswith(bytes([2, 109]))  # alert queued


@pytest.mark.requirement("ECH-83")
def test_second_hello_reusing_enc_is_illegal_parameter(pki: PKI) -> None:
    """ECH-83: enc must be empty in CHO2."""
    relay, outer = _after_hrr(pki)
    with pytest.raises(IllegalParameter):
        relay.client_data(_record(outer))  # CHO1 again: non-empty enc


@pytest.mark.requirement("ECH-83")
def test_second_hello_that_does_not_open_is_decrypt_error(
    pki: PKI,
) -> None:
    """ECH-83: a payload the context cannot open is decrypt_error."""
    relay, outer = _after_hrr(pki)
    data = outer.extension(ExtensionType.ENCRYPTED_CLIENT_HELLO)
    assert data is not None
    offer = parse_client_hello_extension(data)
    assert offer is not None
    from dataclasses import replace

    from ech.tls.extensions import Extension

    bad = replace(offer, enc=b"", payload=bytes(len(offer.payload)))
    second = outer.with_extension(
        Extension(ExtensionType.ENCRYPTED_CLIENT_HELLO, bad.encode())
    )
    with pytest.raises(DecryptError):
        relay.client_data(_record(second))
