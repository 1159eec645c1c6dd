"""Bytes the ECH flight padding adds (RFC 9849 §6.1.3, §10.11; ECH-53).

For each server configuration below, one in-memory handshake per name with
ECH accepted, with and without ``ServerConfig.ech_flight_padding``: the
length of the server's encrypted flight (the records after ServerHello and
its change_cipher_spec, up to the first application-key record) and what
the padding added. With padding every name's flight has the same length.

Configurations (one ECH key, a P-256 CA; ECDSA, whose signatures vary in
length): one P-256 leaf; a P-256 and an RSA-2048 leaf; those two and a
P-256 leaf sent with its intermediate CA.
``--rounds N`` repeats each handshake (ECDSA signatures vary by a byte or
two, so the unpadded flight does too). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import ech
from ech.config import ECHConfigList
from ech.events import ECHStatus, HandshakeComplete
from ech.keys import generate_ech_key
from ech.pki import TestCA
from ech.server.padding import flight_size_bound
from ech.tls.enums import ContentType
from ech.tls.wire import Reader

PUBLIC = "public.example"


def _records(data: bytes) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    r = Reader(data)
    while r.remaining():
        content_type = r.u8()
        r.u16()
        out.append((content_type, len(r.opaque(2))))
    return out


def flight_length(
    config: ech.ServerConfig, ca: TestCA, configs: ECHConfigList, name: str
) -> int:
    """Bytes of the protected records of the server's first flight."""
    client = ech.ClientConnection(
        ech.ClientConfig(trust_store=(ca.certificate,)), name, ech_configs=configs
    )
    server = ech.ServerConnection(config)
    client.start()
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    events = client.receive_data(flight)
    assert any(
        isinstance(e, HandshakeComplete) and e.ech_status is ECHStatus.ACCEPTED
        for e in events
    ), events
    # ServerHello, CCS, then the flight under handshake keys; NewSessionTicket
    # comes after the client's Finished, so everything protected here is it.
    return sum(n + 5 for t, n in _records(flight) if t == ContentType.APPLICATION_DATA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    ca = TestCA.create("padding CA")
    rsa_ca = ca.intermediate("padding intermediate")
    p256 = ca.issue("p256.example", PUBLIC)
    rsa = ca.issue("rsa.example", key_type="rsa2048")
    rsa_leaf = rsa_ca.issue("chained.example")
    chained = ech.CertifiedKey(
        (*rsa_leaf.chain, rsa_ca.certificate), rsa_leaf.private_key
    )
    key = generate_ech_key(PUBLIC)
    configs = ECHConfigList((key.config,))
    setups = {
        "one P-256 leaf": (p256,),
        "P-256 + RSA-2048 leaves": (p256, rsa),
        "P-256 + P-256 leaf with intermediate + RSA-2048": (p256, chained, rsa),
    }
    print("server flight with ECH accepted, bytes on the wire (records with headers)")
    print(
        f"{'configuration':<48} {'name':<16} {'bound':>6} {'plain':>11} "
        f"{'padded':>7} {'overhead':>9}"
    )
    for label, certificates in setups.items():
        config = ech.ServerConfig(certificates=certificates, ech_keys=(key,))
        plain = dataclasses.replace(config, ech_flight_padding=False)
        bound = flight_size_bound(config)
        names = [c.dns_names[0] for c in certificates]
        for name in names:
            unpadded = [
                flight_length(plain, ca, configs, name) for _ in range(args.rounds)
            ]
            padded = {
                flight_length(config, ca, configs, name) for _ in range(args.rounds)
            }
            spread = f"{min(unpadded)}-{max(unpadded)}"
            overhead = max(padded) - statistics.mean(unpadded)
            print(
                f"{label:<48} {name:<16} {bound:>6} {spread:>11} "
                f"{'/'.join(map(str, sorted(padded))):>7} {overhead:>9.0f}"
            )


if __name__ == "__main__":
    main()
