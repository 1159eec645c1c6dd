"""Our QUIC-mode TLS engine against Go 1.27's crypto/tls QUIC API, both roles.

Go's standard library has no QUIC packets, so the two ends meet where QUIC
meets TLS (RFC 9001 §4): the CRYPTO stream bytes of each encryption level,
the traffic secrets each level installs (§5.1) and the transport parameters
(§8.2). One of our :class:`~ech.tls.quic.QuicTLS` carriers is pumped
against ``tlspeer quic-server`` / ``quic-client`` (Go's ``tls.QUICServer``
/ ``tls.QUICClient``) by :func:`interop.go_peer.pump_quic`; an alert on
either side closes the connection with CRYPTO_ERROR 0x100 + alert (§4.8).

ECH (RFC 9849) runs inside that handshake: accepted, rejected with
retry_configs (ech_required, CRYPTO_ERROR 0x179), with a HelloRetryRequest,
and with post-quantum HPKE KEMs beside the X25519MLKEM768 key share.
ECH-N are the requirement ids of ``docs/conformance.rst``.

A missing Go toolchain fails these tests (never skips).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import ech
from ech.client.handshake import ClientHandshake
from ech.config import ECHConfigList
from ech.errors import NoApplicationProtocol
from ech.events import ECHRejected, ECHStatus, HandshakeComplete
from ech.extension import parse_client_hello_extension, parse_retry_configs
from ech.hpke import KEM
from ech.keys import ECHKey, generate_ech_key, write_ech_key
from ech.server.handshake import ServerHandshake
from ech.tls.enums import (
    AlertDescription,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from ech.tls.events import SessionTicketReceived
from ech.tls.handshake import Direction, Epoch
from ech.tls.messages import ClientHello, EncryptedExtensions
from ech.tls.quic import QuicOptions, QuicTLS
from interop.go_peer import GoQuicPeer, QuicExchange, pump_quic
from tests.harness.pki import Leaf
from tests.helpers import split_handshake
from tests.integration.conftest import PKI, SERVER_NAME

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

PUBLIC_NAME = "public.test"
"""The ECH public_name (client-facing server)."""

ALPN = ("h3",)

#: Transport parameters as RFC 9000 §18 encodes them (initial_max_data,
#: initial_max_streams_bidi); distinct per side so a swap would show.
OUR_PARAMETERS = bytes.fromhex("04048010000008024064")
GO_PARAMETERS = bytes.fromhex("040480200000080110")

CRYPTO_ERROR_ECH_REQUIRED = 0x100 + 121
CRYPTO_ERROR_NO_APPLICATION_PROTOCOL = 0x100 + 120
CRYPTO_ERROR_MISSING_EXTENSION = 0x100 + 109

E = ExtensionType


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _go_built(go_peer: Path) -> None:
    """Build the Go peer first: a missing toolchain fails, never skips."""


@dataclass(frozen=True)
class Leaves:
    """One leaf for the inner name and one for the public name only.

    A server holding both picks by SNI, so a rejected-ECH handshake (outer
    SNI = public_name) is authenticated with the public_name certificate
    alone: the client must check that name (RFC 9849 §6.1.7, ECH-65).
    """

    inner: Leaf
    public: Leaf

    @property
    def pairs(self) -> list[tuple[Path, Path]]:
        """``(cert, key)`` paths for a Go server."""
        return [(leaf.cert_path, leaf.key_path) for leaf in (self.inner, self.public)]

    @property
    def certified(self) -> tuple[ech.CertifiedKey, ...]:
        """The certificates for our server."""
        return (self.inner.certified, self.public.certified)


@pytest.fixture(scope="module")
def leaves(pki: PKI) -> Leaves:
    """Leaves for :data:`SERVER_NAME` and for :data:`PUBLIC_NAME`."""
    return Leaves(
        pki.files.leaf(f"quic-{SERVER_NAME}", SERVER_NAME),
        pki.files.leaf(f"quic-{PUBLIC_NAME}", PUBLIC_NAME),
    )


@dataclass(frozen=True)
class KeyFile:
    """An ECH key and the RFC 9934 file holding it (for Go)."""

    key: ECHKey
    path: Path

    @property
    def config_list(self) -> ECHConfigList:
        """An ECHConfigList publishing only this key."""
        return ECHConfigList((self.key.config,))


KeyFactory = Callable[..., KeyFile]


@pytest.fixture
def make_key(tmp_path: Path) -> KeyFactory:
    """Generate ECH keys for :data:`PUBLIC_NAME`, written as RFC 9934 files."""

    def factory(config_id: int, kem_id: int = KEM.DHKEM_X25519_HKDF_SHA256) -> KeyFile:
        key = generate_ech_key(PUBLIC_NAME, kem_id=kem_id, config_id=config_id)
        path = tmp_path / f"ech-{kem_id:04x}-{config_id}.pem"
        write_ech_key(path, key)
        return KeyFile(key, path)

    return factory


# -- the two ends -------------------------------------------------------------------


@dataclass
class Run:
    """One connection: the exchange, and what our handshake saw."""

    exchange: QuicExchange
    handshake: ClientHandshake | ServerHandshake
    #: (parameters, ALPN) our QuicOptions callback got from Go.
    seen_parameters: list[tuple[bytes, str]] = field(default_factory=list)

    @property
    def ours(self) -> HandshakeComplete:
        """Our completed handshake (fails the test if there is none)."""
        done = [e for e in self.exchange.our_events if isinstance(e, HandshakeComplete)]
        assert len(done) == 1, f"our side did not complete: {self.exchange}"
        return done[0]

    @property
    def go(self) -> dict[str, Any]:
        """Go's ``handshake_done`` report (fails the test if there is none)."""
        done = self.exchange.go_handshake
        assert done is not None, f"Go did not complete: {self.exchange}"
        return done

    def hellos(self, sender: str) -> list[ClientHello]:
        """The ClientHellos ``sender`` ("ours" or "go") sent, in order."""
        hellos = []
        for who, epoch, data in self.exchange.log:
            if who == sender and epoch is Epoch.INITIAL:
                for msg_type, body in split_handshake(data):
                    if msg_type == HandshakeType.CLIENT_HELLO:
                        hellos.append(ClientHello.parse(body))
        return hellos

    def encrypted_extensions(self, sender: str) -> EncryptedExtensions:
        """The EncryptedExtensions ``sender`` sent (Handshake level)."""
        for who, epoch, data in self.exchange.log:
            if who == sender and epoch is Epoch.HANDSHAKE:
                for msg_type, body in split_handshake(data):
                    if msg_type == HandshakeType.ENCRYPTED_EXTENSIONS:
                        return EncryptedExtensions.parse(body)
        raise AssertionError(f"no EncryptedExtensions from {sender}")

    def crypto_from(self, sender: str) -> bytes:
        """Every CRYPTO byte ``sender`` sent, all levels."""
        return b"".join(d for who, _, d in self.exchange.log if who == sender)


def _options(seen: list[tuple[bytes, str]]) -> QuicOptions:
    return QuicOptions(
        transport_parameters=lambda: OUR_PARAMETERS,
        on_peer_transport_parameters=lambda p, alpn: seen.append((p, alpn)),
    )


def run_our_client(
    pki: PKI,
    leaves: Leaves,
    *,
    ech_configs: ECHConfigList | None = None,
    go_curves: Sequence[str] | None = None,
    go_alpn: Sequence[str] = ALPN,
    go_ech_keys: Sequence[KeyFile] = (),
    **config: Any,
) -> Run:
    """Our client (QUIC mode) against ``tlspeer quic-server``."""
    config.setdefault("alpn_protocols", ALPN)
    seen: list[tuple[bytes, str]] = []
    client = ClientHandshake(
        ech.ClientConfig(trust_store=(pki.ca.certificate,), **config),
        SERVER_NAME,
        ech_configs=ech_configs,
        quic=_options(seen),
    )
    carrier = QuicTLS(client)
    client.start()
    with GoQuicPeer(
        "server",
        alpn=go_alpn,
        certs=leaves.pairs,
        curves=go_curves,
        ech_keys=[k.path for k in go_ech_keys],
        transport_parameters=GO_PARAMETERS,
    ) as go:
        exchange = pump_quic(carrier, go, carrier.take_outputs())
    return Run(exchange, client, seen)


def run_go_client(
    pki: PKI,
    leaves: Leaves,
    *,
    keys: Sequence[ECHKey] = (),
    ech_configs: ECHConfigList | None = None,
    go_curves: Sequence[str] | None = None,
    go_alpn: Sequence[str] = ALPN,
    **config: Any,
) -> Run:
    """``tlspeer quic-client`` against our server (QUIC mode)."""
    config.setdefault("alpn_protocols", ALPN)
    seen: list[tuple[bytes, str]] = []
    server = ServerHandshake(
        ech.ServerConfig(certificates=leaves.certified, ech_keys=tuple(keys), **config),
        quic=_options(seen),
    )
    with GoQuicPeer(
        "client",
        alpn=go_alpn,
        sni=SERVER_NAME,
        ca=pki.ca_path,
        curves=go_curves,
        ech_config_list=None if ech_configs is None else ech_configs.to_base64(),
        transport_parameters=GO_PARAMETERS,
    ) as go:
        exchange = pump_quic(QuicTLS(server), go)
    return Run(exchange, server, seen)


# -- shared assertions --------------------------------------------------------------


def assert_quic_handshake(run: Run) -> None:
    """What every completed QUIC-TLS handshake shows on both ends.

    RFC 9001 §8.1: ALPN negotiated (h3) on both. §8.2: each side's
    quic_transport_parameters reach the other byte for byte. §5.1: the
    Handshake and 1-RTT secrets, both directions, are identical on both
    ends, for the same suite. §4.1.4: messages at their levels.
    """
    ours, go = run.ours, run.go
    assert ours.alpn_protocol == go["alpn"] == "h3"
    assert go["version"] == "TLS 1.3"
    assert go["cipher_suite_id"] == ours.cipher_suite
    assert run.seen_parameters == [(GO_PARAMETERS, "h3")]
    assert run.handshake.peer_transport_parameters == GO_PARAMETERS
    assert run.exchange.go_received_parameters == OUR_PARAMETERS
    assert go["peer_transport_parameters"] == OUR_PARAMETERS.hex()
    assert run.exchange.secret_mismatches() == []
    assert set(run.exchange.our_secrets) == {
        (direction, epoch)
        for direction in Direction
        for epoch in (Epoch.HANDSHAKE, Epoch.APPLICATION)
    }
    assert run.exchange.our_abort is None
    assert run.exchange.our_error is None
    assert run.exchange.go_error is None
    for hello in run.hellos("ours") + run.hellos("go"):
        assert hello.legacy_session_id == b""  # RFC 9001 §8.4
    levels = [
        (who, epoch, msg_type)
        for who, epoch, data in run.exchange.log
        for msg_type, _ in split_handshake(data)
    ]
    client = "ours" if isinstance(run.handshake, ClientHandshake) else "go"
    server = "go" if client == "ours" else "ours"
    assert levels[0] == (client, Epoch.INITIAL, HandshakeType.CLIENT_HELLO)
    assert (server, Epoch.INITIAL, HandshakeType.SERVER_HELLO) in levels
    assert (server, Epoch.HANDSHAKE, HandshakeType.ENCRYPTED_EXTENSIONS) in levels
    assert (server, Epoch.HANDSHAKE, HandshakeType.FINISHED) in levels
    assert (client, Epoch.HANDSHAKE, HandshakeType.FINISHED) in levels
    # Tickets travel in 1-RTT CRYPTO frames (RFC 9001 §4.1.3).
    assert (server, Epoch.APPLICATION, HandshakeType.NEW_SESSION_TICKET) in levels


def assert_ech_accepted(run: Run) -> None:
    """ECH accepted on both ends, the inner name authenticated (RFC 9849 §6.1.4).

    ECH-55 (accept_confirmation checked by the client), ECH-57 (the
    inner hello is the one that counts), ECH-42 (the outer SNI is the
    public_name: the inner name never appears in the client's CRYPTO data).
    """
    assert_quic_handshake(run)
    ours, go = run.ours, run.go
    assert go["ech_accepted"] is True
    assert go["server_name"] == SERVER_NAME
    assert ours.ech_status is ECHStatus.ACCEPTED
    assert ours.server_name == SERVER_NAME
    assert ours.outer_server_name == PUBLIC_NAME
    client = "ours" if isinstance(run.handshake, ClientHandshake) else "go"
    assert SERVER_NAME.encode() not in run.crypto_from(client)
    (outer, *_) = run.hellos(client)
    assert outer.has_extension(E.ENCRYPTED_CLIENT_HELLO)
    # The outer hello carries the transport parameters too (RFC 9849 §5.1:
    # ours by compression into the inner hello, ECH-39).
    assert outer.has_extension(E.QUIC_TRANSPORT_PARAMETERS)


# -- plain QUIC-TLS -------------------------------------------------------------------


def test_our_client_go_server_quic_tls(pki: PKI, leaves: Leaves) -> None:
    """RFC 9001 §4, §5.1, §8.1, §8.2, §8.4 against Go's tls.QUICServer.

    The handshake completes with h3, the transport parameters cross intact
    both ways, every Handshake and 1-RTT secret is the same on both ends,
    and Go's NewSessionTicket (QUICConn.SendSessionTicket) reaches us in
    Application-level CRYPTO data.
    """
    run = run_our_client(pki, leaves)
    assert_quic_handshake(run)
    assert run.ours.ech_status is ECHStatus.NOT_OFFERED
    assert run.go["ech_accepted"] is False
    assert run.go["server_name"] == SERVER_NAME
    assert any(isinstance(e, SessionTicketReceived) for e in run.exchange.our_events)


def test_go_client_our_server_quic_tls(pki: PKI, leaves: Leaves) -> None:
    """RFC 9001 §4, §5.1, §8.1, §8.2, §8.4 against Go's tls.QUICClient.

    As above in the other role; Go takes our NewSessionTicket as a QUIC
    one (QUICStoreSession) and, as we offer no 0-RTT, not for early data
    (RFC 9001 §4.6.1).
    """
    run = run_go_client(pki, leaves)
    assert_quic_handshake(run)
    assert run.ours.server_name == SERVER_NAME
    assert run.ours.ech_status is ECHStatus.NOT_OFFERED
    ticket = run.exchange.go_report("session_ticket")
    assert ticket is not None
    assert ticket["early_data"] is False


# -- ECH accepted -------------------------------------------------------------------


@pytest.mark.requirement("ECH-19", "ECH-20", "ECH-21", "ECH-37", "ECH-42", "ECH-55")
def test_our_client_go_server_ech_accepted(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """RFC 9849 §6.1 and §7 over QUIC: Go's server decrypts our outer hello.

    ECH-19 to ECH-21 (the outer extension), ECH-37/#48 (HPKE sealing with the
    outer hello as AAD, which here includes quic_transport_parameters),
    ECH-55/#57, ECH-42.
    """
    key = make_key(config_id=7)
    run = run_our_client(pki, leaves, ech_configs=key.config_list, go_ech_keys=[key])
    assert_ech_accepted(run)
    (outer,) = run.hellos("ours")
    assert outer.extension(E.QUIC_TRANSPORT_PARAMETERS) == OUR_PARAMETERS


@pytest.mark.requirement("ECH-77", "ECH-88")
def test_go_client_our_server_ech_accepted(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """RFC 9849 §7.1 over QUIC: we decrypt Go's outer hello and confirm.

    ECH-77 (open the payload with the config's HPKE context), ECH-88
    (accept_confirmation in ServerHello.random, which Go checks), and the
    client's transport parameters taken from ClientHelloInner.
    """
    key = make_key(config_id=7)
    run = run_go_client(pki, leaves, keys=[key.key], ech_configs=key.config_list)
    assert_ech_accepted(run)
    server = run.handshake
    assert isinstance(server, ServerHandshake)
    assert server.client_hello is not None
    assert server.client_hello.extension(E.QUIC_TRANSPORT_PARAMETERS) == (GO_PARAMETERS)


# -- ECH rejected, retry_configs, one retry --------------------------------------------


@pytest.mark.requirement("ECH-24", "ECH-63", "ECH-64", "ECH-65", "ECH-66")
def test_our_client_go_server_ech_rejected_then_retry(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """RFC 9849 §6.1.6 over QUIC, against Go's server.

    With a stale config, Go rejects ECH and sends retry_configs; we
    authenticate the outer handshake for public_name (the only name Go's
    certificate for that SNI carries, ECH-65), then close with
    ech_required: CRYPTO_ERROR 0x179 (RFC 9001 §4.8; ECH-24, ECH-63),
    so Go never sees our Finished and never completes. One retry on a new
    connection with the authenticated retry_configs is accepted (ECH-64).
    """
    stale, current = make_key(config_id=1), make_key(config_id=2)
    run = run_our_client(
        pki, leaves, ech_configs=stale.config_list, go_ech_keys=[current]
    )
    exchange = run.exchange
    assert exchange.our_abort is AlertDescription.ECH_REQUIRED
    assert exchange.closed_with == CRYPTO_ERROR_ECH_REQUIRED == 0x179
    (rejected,) = [e for e in exchange.our_events if isinstance(e, ECHRejected)]
    assert rejected.public_name == PUBLIC_NAME
    assert rejected.retry_configs == current.config_list
    assert not any(isinstance(e, HandshakeComplete) for e in exchange.our_events)
    closed = exchange.go_report("closed")
    assert closed is not None
    assert closed["error_code"] == 0x179
    assert closed["handshake_complete"] is False
    assert exchange.go_handshake is None
    # ECH-66: no ticket from the rejected connection is kept.
    assert isinstance(run.handshake, ClientHandshake)
    assert run.handshake.session_tickets == []

    retry = run_our_client(
        pki, leaves, ech_configs=rejected.retry_configs, go_ech_keys=[current]
    )
    assert_ech_accepted(retry)


@pytest.mark.requirement("ECH-81")
def test_go_client_our_server_ech_rejected_then_retry(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """RFC 9849 §6.1.6 and §7.1 over QUIC, against Go's client.

    We cannot decrypt the stale config's payload, so we continue with the
    outer hello, present the public_name certificate and send our current
    config as retry_configs (ECH-81). Go authenticates that, fails
    with ech_required (its QUICConn returns AlertError 121: CRYPTO_ERROR
    0x179) and hands the application the RetryConfigList; a new Go
    connection with it is accepted.
    """
    stale, current = make_key(config_id=1), make_key(config_id=2)
    run = run_go_client(pki, leaves, keys=[current.key], ech_configs=stale.config_list)
    error = run.exchange.go_error
    assert error is not None, run.exchange
    assert error["alert"] == AlertDescription.ECH_REQUIRED
    assert error["quic_error_code"] == 0x179
    assert error["ech_rejected"] is True
    retry_configs = ECHConfigList.from_base64(str(error["retry_configs"]))
    assert retry_configs == current.config_list
    server = run.handshake
    assert isinstance(server, ServerHandshake)
    assert server.ech_status is ECHStatus.REJECTED
    assert server.server_name == PUBLIC_NAME
    assert not server.complete  # Go's Finished never came

    retry = run_go_client(pki, leaves, keys=[current.key], ech_configs=retry_configs)
    assert_ech_accepted(retry)


# -- HelloRetryRequest with ECH --------------------------------------------------------


@pytest.mark.requirement("ECH-56", "ECH-58", "ECH-59")
def test_our_client_go_server_hrr_with_ech(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """Go's server takes P-384 only, so it sends HRR; ECH stays accepted.

    RFC 9849 §6.1.5 and §7.1.1 over QUIC (both hellos in Initial CRYPTO
    data, no legacy_session_id, RFC 9001 §8.4): ECH-56 (the HRR
    confirmation Go computes and we check), ECH-58 (the second outer hello
    sealed by the same HPKE context: empty enc), ECH-59.
    """
    key = make_key(config_id=3)
    run = run_our_client(
        pki,
        leaves,
        ech_configs=key.config_list,
        go_ech_keys=[key],
        go_curves=["P384"],
    )
    assert_ech_accepted(run)
    assert run.ours.hello_retry is True
    assert run.go["hrr"] is True
    assert run.ours.group == NamedGroup.SECP384R1
    assert run.go["group"] == "P384"
    first, second = run.hellos("ours")
    for hello in (first, second):
        assert hello.extension(E.QUIC_TRANSPORT_PARAMETERS) == OUR_PARAMETERS
    offer = parse_client_hello_extension(
        second.extension(E.ENCRYPTED_CLIENT_HELLO) or b""
    )
    assert offer is not None
    assert offer.enc == b""


@pytest.mark.requirement("ECH-23", "ECH-59", "ECH-83")
def test_go_client_our_server_hrr_with_ech(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """Our server takes P-384 only, so it sends HRR; Go's ECH stays accepted.

    ECH-23/#90 (our HRR carries the hrr_accept_confirmation Go
    checks), ECH-83 (Go's second outer hello opened with the same HPKE
    context), ECH-59.
    """
    key = make_key(config_id=3)
    run = run_go_client(
        pki,
        leaves,
        keys=[key.key],
        ech_configs=key.config_list,
        groups=(NamedGroup.SECP384R1,),
    )
    assert_ech_accepted(run)
    assert run.ours.hello_retry is True
    assert run.go["hrr"] is True
    assert run.ours.group == NamedGroup.SECP384R1
    assert run.go["group"] == "P384"
    assert len(run.hellos("go")) == 2


# -- post-quantum -----------------------------------------------------------------

PQ_KEMS = [KEM.ML_KEM_768, KEM.MLKEM768_X25519]
PQ_IDS = ["ML-KEM-768", "X-Wing"]


@pytest.mark.parametrize("kem", PQ_KEMS, ids=PQ_IDS)
def test_our_client_go_server_post_quantum(
    pki: PKI, leaves: Leaves, make_key: KeyFactory, kem: KEM
) -> None:
    """X25519MLKEM768 key exchange and ECH with a draft-ietf-hpke-pq KEM.

    Go's server takes only X25519MLKEM768 and reads the PQ ECH key from its
    RFC 9934 file. The 1 KiB+ enc makes our ClientHello span more than one
    QUIC packet's worth of Initial CRYPTO data (RFC 9001 §4.3).
    """
    key = make_key(config_id=5, kem_id=kem)
    run = run_our_client(
        pki,
        leaves,
        ech_configs=key.config_list,
        go_ech_keys=[key],
        go_curves=["X25519MLKEM768"],
    )
    assert_ech_accepted(run)
    assert run.ours.group == NamedGroup.X25519MLKEM768
    assert run.go["group"] == "X25519MLKEM768"


@pytest.mark.parametrize("kem", PQ_KEMS, ids=PQ_IDS)
def test_go_client_our_server_post_quantum(
    pki: PKI, leaves: Leaves, make_key: KeyFactory, kem: KEM
) -> None:
    """The same with Go's client: X25519MLKEM768, ECH with a PQ KEM."""
    key = make_key(config_id=5, kem_id=kem)
    run = run_go_client(
        pki,
        leaves,
        keys=[key.key],
        ech_configs=key.config_list,
        groups=(NamedGroup.X25519MLKEM768,),
    )
    assert_ech_accepted(run)
    assert run.ours.group == NamedGroup.X25519MLKEM768
    assert run.go["group"] == "X25519MLKEM768"


# -- RFC 9001 §8 enforced against the real peer --------------------------------


def test_go_server_refuses_our_client_without_alpn_in_common(
    pki: PKI, leaves: Leaves
) -> None:
    """RFC 9001 §8.1: no application protocol → no_application_protocol.

    Go's server speaks only hq-interop; we offer h3. Go fails with
    AlertError 120, i.e. CRYPTO_ERROR 0x178, before sending its flight.
    """
    run = run_our_client(pki, leaves, go_alpn=["hq-interop"])
    error = run.exchange.go_error
    assert error is not None, run.exchange
    assert error["alert"] == AlertDescription.NO_APPLICATION_PROTOCOL
    assert error["quic_error_code"] == CRYPTO_ERROR_NO_APPLICATION_PROTOCOL
    assert run.exchange.our_secrets == {}
    assert run.exchange.our_events == []


def test_go_server_refuses_our_client_without_transport_parameters(
    pki: PKI, leaves: Leaves
) -> None:
    """RFC 9001 §8.2: a ClientHello without quic_transport_parameters is 0x16d.

    Our client never omits them; a hook strips them to show Go enforces it.
    """

    def strip(hello: ClientHello) -> ClientHello:
        return hello.without_extension(E.QUIC_TRANSPORT_PARAMETERS)

    run = run_our_client(pki, leaves, client_hello_hook=strip)
    error = run.exchange.go_error
    assert error is not None, run.exchange
    assert error["alert"] == AlertDescription.MISSING_EXTENSION
    assert error["quic_error_code"] == CRYPTO_ERROR_MISSING_EXTENSION


def test_our_server_refuses_go_client_without_alpn_in_common(
    pki: PKI, leaves: Leaves
) -> None:
    """RFC 9001 §8.1 enforced by us: Go offers only hq-interop, we serve h3.

    Our server raises no_application_protocol; the pump closes Go's
    connection with CRYPTO_ERROR 0x178 (§4.8) before any secret exists.
    """
    run = run_go_client(pki, leaves, go_alpn=["hq-interop"])
    assert isinstance(run.exchange.our_error, NoApplicationProtocol)
    assert run.exchange.closed_with == CRYPTO_ERROR_NO_APPLICATION_PROTOCOL
    closed = run.exchange.go_report("closed")
    assert closed is not None
    assert closed["error_code"] == 0x178
    assert closed["handshake_complete"] is False
    assert run.exchange.our_secrets == {}


def test_go_client_refuses_our_server_without_transport_parameters(
    pki: PKI, leaves: Leaves
) -> None:
    """RFC 9001 §8.2 enforced by Go's client on our EncryptedExtensions.

    Our server never omits them; a hook strips them to show Go closes with
    missing_extension (CRYPTO_ERROR 0x16d) before it sends its Finished.
    """

    def strip(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.without_extension(E.QUIC_TRANSPORT_PARAMETERS)

    run = run_go_client(pki, leaves, encrypted_extensions_hook=strip)
    error = run.exchange.go_error
    assert error is not None, run.exchange
    assert error["alert"] == AlertDescription.MISSING_EXTENSION
    assert error["quic_error_code"] == CRYPTO_ERROR_MISSING_EXTENSION
    assert not run.handshake.complete


@pytest.mark.requirement("ECH-69", "ECH-71")
def test_our_grease_against_go_server_with_ech_keys(
    pki: PKI, leaves: Leaves, make_key: KeyFactory
) -> None:
    """GREASE ECH over QUIC (RFC 9849 §6.2): Go's server cannot decrypt it.

    Go treats it as a rejection and sends retry_configs in
    EncryptedExtensions; a GREASE client checks their syntax and otherwise
    ignores them (ECH-69, ECH-71), so the handshake completes for the
    real name and nothing is stored.
    """
    key = make_key(config_id=9)
    run = run_our_client(pki, leaves, ech_grease=True, go_ech_keys=[key])
    assert_quic_handshake(run)
    assert run.ours.ech_status is ECHStatus.GREASE
    assert run.go["ech_accepted"] is False
    assert run.go["server_name"] == SERVER_NAME
    (hello,) = run.hellos("ours")
    assert hello.has_extension(E.ENCRYPTED_CLIENT_HELLO)
    retry = run.encrypted_extensions("go").extension(E.ENCRYPTED_CLIENT_HELLO)
    assert retry is not None
    assert parse_retry_configs(retry) == key.config_list  # and ignored (ECH-71)
    assert isinstance(run.handshake, ClientHandshake)
    assert run.handshake.retry_configs is None
