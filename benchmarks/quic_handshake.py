"""CPU cost of one full QUIC handshake: ours with ECH accepted, aioquic's plain.

Both run over in-memory QUIC in this one process: two aioquic
``QuicConnection`` objects hand each other their datagrams directly, so the
whole QUIC stack (packet protection, frames, acknowledgements) is in the
measurement, not only TLS.

* ``ech (ECH, QUIC)``: :class:`ech.quic.ECHQuicConnection` on both ends, the
  client offering ECH (X25519, HKDF-SHA256, AES-128-GCM) and the server
  accepting it; our TLS engine inside aioquic.
* ``ech (plain, QUIC)``: the same without ECH.
* ``aioquic (plain)``: aioquic's own ``QuicConnection`` with its own TLS.

All use X25519, TLS_AES_128_GCM_SHA256, an ECDSA P-256 leaf and a P-256 CA,
the client verifying the chain and name; no session tickets are issued by
our server and aioquic's issues none unless asked. Every call into a side
(constructing its connection included) is timed with
``time.process_time_ns`` and counted toward that side. Implementations run
interleaved, rotating, to spread drift.

Run with ``.venv/bin/python benchmarks/quic_handshake.py [--count N]``
(``make bench`` runs it too).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

from aioquic._buffer import Buffer  # aioquic.buffer does not re-export it
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import HandshakeCompleted
from aioquic.quic.packet import pull_quic_header
from aioquic.tls import CipherSuite as AioquicSuite
from timing import Side

import ech
from ech.config import ECHConfigList, HpkeSymmetricCipherSuite
from ech.events import ECHStatus
from ech.hpke import AEAD, KDF
from ech.keys import generate_ech_key
from ech.pki import TestCA
from ech.quic import ECHQuicConnection

INNER_NAME = "secret.example"
PUBLIC_NAME = "public.example"
ALPN = ["h3"]
CLIENT_ADDRESS = ("127.0.0.1", 40000)
SERVER_ADDRESS = ("127.0.0.1", 443)


@dataclass(frozen=True)
class Fixture:
    """Certificates and configurations, made once."""

    ca: TestCA
    ech_configs: ECHConfigList
    client: ech.ClientConfig
    server: ech.ServerConfig
    server_plain: ech.ServerConfig
    leaf: ech.CertifiedKey


@dataclass
class Result:
    """Per-handshake CPU of one implementation."""

    client_ns: list[int] = field(default_factory=list)
    server_ns: list[int] = field(default_factory=list)

    def ms(self, side: str) -> float:
        """Mean CPU per handshake of ``side``, in ms."""
        values = self.client_ns if side == "client" else self.server_ns
        return statistics.fmean(values) / 1e6


def make_fixture() -> Fixture:
    ca = TestCA.create(key_type="p256")
    suite = ech.CipherSuite.TLS_AES_128_GCM_SHA256
    x25519 = ech.NamedGroup.X25519
    key = generate_ech_key(
        PUBLIC_NAME,
        cipher_suites=(HpkeSymmetricCipherSuite(KDF.HKDF_SHA256, AEAD.AES_128_GCM),),
    )
    leaf = ca.issue(INNER_NAME, PUBLIC_NAME, key_type="p256")
    client = ech.ClientConfig(
        trust_store=(ca.certificate,),
        cipher_suites=(suite,),
        groups=(x25519,),
        key_share_groups=(x25519,),
        alpn_protocols=tuple(ALPN),
    )
    server = ech.ServerConfig(
        certificates=(leaf,),
        groups=(x25519,),
        cipher_suites=(suite,),
        session_tickets=False,
        alpn_protocols=tuple(ALPN),
        ech_keys=(key,),
    )
    return Fixture(
        ca,
        ECHConfigList((key.config,)),
        client,
        server,
        dataclasses.replace(server, ech_keys=()),
        leaf,
    )


def quic_settings(fx: Fixture, is_client: bool) -> QuicConfiguration:
    configuration = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=list(ALPN),
        cipher_suites=[AioquicSuite.AES_128_GCM_SHA256],
        server_name=INNER_NAME if is_client else None,
    )
    if is_client:
        configuration.load_verify_locations(cadata=fx.ca.pem)
    else:
        configuration.certificate = fx.leaf.chain[0]
        configuration.private_key = fx.leaf.private_key
    return configuration


Factory = Callable[[Fixture, bytes], QuicConnection]


def run_one(
    fx: Fixture, make_client: Factory, make_server: Factory, cs: Side, ss: Side
) -> tuple[QuicConnection, QuicConnection]:
    """One in-memory QUIC handshake, each side's calls timed apart."""
    now = 1000.0
    with cs:
        client = make_client(fx, b"")
        client.connect(SERVER_ADDRESS, now=now)
    server: QuicConnection | None = None
    done = {"client": False, "server": False}
    for _ in range(20):
        with cs:
            datagrams = client.datagrams_to_send(now=now)
        for data, _ in datagrams:
            with ss:
                if server is None:
                    header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                    server = make_server(fx, header.destination_cid)
                server.receive_datagram(data, CLIENT_ADDRESS, now=now)
        if server is None:
            raise RuntimeError("the client sent nothing")
        with ss:
            answers = server.datagrams_to_send(now=now)
            done["server"] |= _completed(server)
        for data, _ in answers:
            with cs:
                client.receive_datagram(data, SERVER_ADDRESS, now=now)
        with cs:
            done["client"] |= _completed(client)
        if all(done.values()):
            return client, server
        now += 0.001
    raise RuntimeError("the handshake did not complete")


def _completed(connection: QuicConnection) -> bool:
    completed = False
    while (event := connection.next_event()) is not None:
        completed |= isinstance(event, HandshakeCompleted)
    return completed


def ours(use_ech: bool) -> tuple[Factory, Factory]:
    def client(fx: Fixture, _: bytes) -> QuicConnection:
        return ECHQuicConnection(
            configuration=quic_settings(fx, True),
            tls=fx.client,
            server_name=INNER_NAME,
            ech_configs=fx.ech_configs if use_ech else None,
        )

    def server(fx: Fixture, odcid: bytes) -> QuicConnection:
        return ECHQuicConnection(
            configuration=quic_settings(fx, False),
            tls=fx.server if use_ech else fx.server_plain,
            original_destination_connection_id=odcid,
        )

    return client, server


def aioquic_pair() -> tuple[Factory, Factory]:
    def client(fx: Fixture, _: bytes) -> QuicConnection:
        return QuicConnection(configuration=quic_settings(fx, True))

    def server(fx: Fixture, odcid: bytes) -> QuicConnection:
        return QuicConnection(
            configuration=quic_settings(fx, False),
            original_destination_connection_id=odcid,
        )

    return client, server


def check(name: str, client: QuicConnection, server: QuicConnection) -> None:
    """Fail unless ECH ended as this row says (untimed)."""
    if not isinstance(client, ECHQuicConnection) or not isinstance(
        server, ECHQuicConnection
    ):
        return
    expected = ECHStatus.ACCEPTED if "ECH" in name else ECHStatus.NOT_OFFERED
    for end in (client, server):
        done = end.handshake_complete_event
        if done is None or done.ech_status is not expected:
            raise RuntimeError(f"{name}: expected {expected}, got {done}")


IMPLEMENTATIONS: dict[str, tuple[Factory, Factory]] = {
    "ech (ECH, QUIC)": ours(True),
    "ech (plain, QUIC)": ours(False),
    "aioquic (plain)": aioquic_pair(),
}
BASELINE = "aioquic (plain)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    fx = make_fixture()
    results = {name: Result() for name in IMPLEMENTATIONS}
    names = list(IMPLEMENTATIONS)
    gc.disable()
    try:
        for round_no in range(args.warmup + args.count):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                cs, ss = Side(), Side()
                client, server = run_one(fx, *IMPLEMENTATIONS[name], cs, ss)
                check(name, client, server)
                if round_no >= args.warmup:
                    results[name].client_ns.append(cs.ns)
                    results[name].server_ns.append(ss.ns)
            if round_no % 20 == 0:
                gc.collect()
    finally:
        gc.enable()
    base = results[BASELINE]
    print(
        f"Python {sys.version.split()[0]}, aioquic {version('aioquic')}, "
        f"cryptography {version('cryptography')}; {args.count} handshakes each"
    )
    header = (
        f"{'impl':<20} {'client ms/hs':>12} {'server ms/hs':>12}"
        f" {'client vs aioquic':>18} {'server vs aioquic':>18}"
    )
    print(header)
    for name, result in results.items():
        print(
            f"{name:<20} {result.ms('client'):>12.3f} {result.ms('server'):>12.3f}"
            f" {result.ms('client') / base.ms('client'):>17.2f}x"
            f" {result.ms('server') / base.ms('server'):>17.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
