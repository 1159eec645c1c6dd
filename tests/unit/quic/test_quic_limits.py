"""What QUIC takes from TLS 1.3 and what it does not (RFC 9001 §4.6, §5.3).

Only the suites QUIC packet protection can use are offered or chosen (aioquic
implements AES-GCM and ChaCha20-Poly1305; RFC 9001 §5.3 forbids CCM_8), with
a clear error when a configuration leaves none. 0-RTT is never offered,
accepted or advertised over QUIC.
"""

from __future__ import annotations

import dataclasses

import pytest

from ech.client.handshake import ClientHandshake
from ech.server.handshake import ServerHandshake
from ech.tls.enums import CipherSuite
from ech.tls.events import SessionTicketReceived
from tests.unit.ech.ech_helpers import INNER_NAME, client_config, server_config
from tests.unit.quic.test_quic_tls import (
    ALPN,
    CLIENT_PARAMETERS,
    SERVER_PARAMETERS,
    complete,
    first_hello,
    make_pair,
    quic_options,
)

CCM = CipherSuite.TLS_AES_128_CCM_SHA256
CCM_8 = CipherSuite.TLS_AES_128_CCM_8_SHA256
GCM = CipherSuite.TLS_AES_128_GCM_SHA256
CHACHA = CipherSuite.TLS_CHACHA20_POLY1305_SHA256


def test_quic_client_never_offers_ccm() -> None:
    """RFC 9001 §5.3: never CCM_8; CCM has no aioquic packet protection."""
    cc = client_config(
        alpn_protocols=ALPN, cipher_suites=(CCM_8, CCM, CHACHA, GCM), allow_ccm_8=True
    )
    pair = make_pair(cc)
    assert first_hello(pair).cipher_suites == (CHACHA, GCM)
    pair.pump()
    assert complete(pair.client).cipher_suite == GCM  # the server's preference


def test_quic_server_never_chooses_ccm() -> None:
    sc = dataclasses.replace(
        server_config(alpn_protocols=ALPN), cipher_suites=(CCM, GCM)
    )
    cc = client_config(alpn_protocols=ALPN, cipher_suites=(CCM, GCM))
    pair = make_pair(cc, sc)
    assert first_hello(pair).cipher_suites == (GCM,)
    pair.pump()
    assert complete(pair.server).cipher_suite == GCM


@pytest.mark.parametrize("suites", [(CCM,), (CCM_8,), (CCM_8, CCM)])
def test_quic_without_a_usable_suite_is_a_clear_error(
    suites: tuple[CipherSuite, ...],
) -> None:
    cc = client_config(alpn_protocols=ALPN, cipher_suites=suites, allow_ccm_8=True)
    with pytest.raises(ValueError, match=r"RFC 9001 §5\.3"):
        ClientHandshake(cc, INNER_NAME, quic=quic_options(CLIENT_PARAMETERS, []))
    sc = dataclasses.replace(
        server_config(alpn_protocols=ALPN), cipher_suites=suites, allow_ccm_8=True
    )
    with pytest.raises(ValueError, match=r"RFC 9001 §5\.3"):
        ServerHandshake(sc, quic=quic_options(SERVER_PARAMETERS, []))


def test_quic_never_advertises_or_accepts_0rtt() -> None:
    """0-RTT is out of scope over QUIC: a server taking early data over TCP
    issues QUIC tickets without early_data, and a client cannot ask for it."""
    sc = dataclasses.replace(
        server_config(alpn_protocols=ALPN), max_early_data_size=16384
    )
    pair = make_pair(client_config(alpn_protocols=ALPN), sc)
    pair.pump()
    tickets = [
        e.ticket for e in pair.client.events if isinstance(e, SessionTicketReceived)
    ]
    assert tickets
    assert all(t.max_early_data_size == 0 for t in tickets)
    with pytest.raises(ValueError, match="0-RTT"):
        ClientHandshake(
            client_config(alpn_protocols=ALPN),
            INNER_NAME,
            session=tickets[0],
            quic=quic_options(CLIENT_PARAMETERS, []),
            early_data=True,
        )
