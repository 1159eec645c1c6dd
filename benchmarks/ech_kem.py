"""CPU and size cost of each HPKE KEM in an ECH-accepted TLS 1.3 handshake.

For X25519 (the RFC 9849 §9 baseline) and the five draft-ietf-hpke-pq KEMs
of :mod:`ech.hpke`, in memory and with otherwise identical parameters
(X25519 TLS key share; HKDF-SHA256 / AES-128-GCM ECH suite for
``public.example``; ECDSA P-256 leaves for ``public.example`` and
``secret.example`` from a P-256 CA the client validates against;
TLS_AES_128_GCM_SHA256; no session tickets), as in
``benchmarks/ech_handshake.py``:

* client and server CPU per handshake (``time.process_time_ns`` around every
  call into a side, constructing the connection included); every handshake
  must end with ECH accepted on both sides (checked outside the timed calls);
* the HPKE part alone: ``SetupBaseS`` + one ``Seal`` and ``SetupBaseR`` +
  one ``Open`` of a 300-byte payload; for X25519 also its floor, the
  ``cryptography`` calls those cannot avoid, so that what pyhpke (the
  engine for the classical KEMs) adds is measured, not guessed;
* sizes: ``Npk`` (the ECHConfig's public key), ``Nenc`` and the client's
  first flight (ClientHelloOuter record).

KEMs run interleaved, one handshake each per round, in rotating order.
``--count N`` sets the rounds (default 200, after ``--warmup`` 10).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from timing import Side, pump

import ech
from ech import hpke
from ech.config import ECHConfigList, HpkeSymmetricCipherSuite
from ech.events import ECHStatus
from ech.hpke import AEAD, KDF, KEM
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA

PUBLIC_NAME: Final = "public.example"
INNER_NAME: Final = "secret.example"
SUITE: Final = HpkeSymmetricCipherSuite(KDF.HKDF_SHA256, AEAD.AES_128_GCM)
KEMS: Final = (
    KEM.DHKEM_X25519_HKDF_SHA256,
    KEM.ML_KEM_768,
    KEM.ML_KEM_1024,
    KEM.MLKEM768_X25519,
    KEM.MLKEM768_P256,
    KEM.MLKEM1024_P384,
)
LABELS: Final = {
    KEM.DHKEM_X25519_HKDF_SHA256: "X25519 (0x0020)",
    KEM.ML_KEM_768: "ML-KEM-768 (0x0041)",
    KEM.ML_KEM_1024: "ML-KEM-1024 (0x0042)",
    KEM.MLKEM768_X25519: "X-Wing (0x647a)",
    KEM.MLKEM768_P256: "MLKEM768-P256 (0x0050)",
    KEM.MLKEM1024_P384: "MLKEM1024-P384 (0x0051)",
}
HPKE_PAYLOAD: Final = bytes(300)  # about a padded EncodedClientHelloInner


@dataclass(frozen=True)
class Fixture:
    """One KEM's ECH key and both configurations."""

    kem: KEM
    key: ECHKey
    configs: ECHConfigList
    client: ech.ClientConfig
    server: ech.ServerConfig


@dataclass
class Result:
    """Per-handshake CPU times and sizes for one KEM."""

    client_ns: list[int] = field(default_factory=list)
    server_ns: list[int] = field(default_factory=list)
    seal_ns: list[int] = field(default_factory=list)
    open_ns: list[int] = field(default_factory=list)
    floor_seal_ns: list[int] = field(default_factory=list)
    floor_open_ns: list[int] = field(default_factory=list)
    hello_bytes: int = 0

    @staticmethod
    def ms(values: list[int]) -> float:
        """Mean of ``values`` (ns) in ms."""
        return statistics.fmean(values) / 1e6


def make_fixtures() -> list[Fixture]:
    ca = TestCA.create(key_type="p256")
    suite = ech.CipherSuite.TLS_AES_128_GCM_SHA256
    x25519 = ech.NamedGroup.X25519
    client = ech.ClientConfig(
        trust_store=(ca.certificate,),
        cipher_suites=(suite,),
        groups=(x25519,),
        key_share_groups=(x25519,),
    )
    certificates = (
        ca.issue(PUBLIC_NAME, key_type="p256"),
        ca.issue(INNER_NAME, key_type="p256"),
    )
    fixtures = []
    for kem in KEMS:
        key = generate_ech_key(PUBLIC_NAME, kem_id=kem, cipher_suites=(SUITE,))
        server = ech.ServerConfig(
            certificates=certificates,
            groups=(x25519,),
            cipher_suites=(suite,),
            session_tickets=False,
            ech_keys=(key,),
        )
        fixtures.append(Fixture(kem, key, ECHConfigList((key.config,)), client, server))
    return fixtures


def handshake(
    fx: Fixture, cs: Side, ss: Side
) -> tuple[ech.ClientConnection, ech.ServerConnection, int]:
    """One full ECH handshake; returns both ends and the first flight's size."""
    with cs:
        client = ech.ClientConnection(fx.client, INNER_NAME, ech_configs=fx.configs)
        client.start()
        to_server = client.data_to_send()
    first_flight = len(to_server)
    with ss:
        server = ech.ServerConnection(fx.server)
    pump(client, server, to_server, cs, ss)
    return client, server, first_flight


def check(client: ech.ClientConnection, server: ech.ServerConnection) -> None:
    """Fail unless both ends accepted ECH (done untimed)."""
    if client.ech_status is not ECHStatus.ACCEPTED:
        raise RuntimeError(f"client ech_status {client.ech_status}")
    if server.ech_status is not ECHStatus.ACCEPTED:
        raise RuntimeError(f"server ech_status {server.ech_status}")


def hpke_only(fx: Fixture, result: Result | None) -> None:
    """``SetupBaseS`` + ``Seal`` and ``SetupBaseR`` + ``Open``, timed apart."""
    contents = fx.key.config.contents
    assert contents is not None
    info = fx.key.config.hpke_info()
    start = time.process_time_ns()
    enc, sender = hpke.setup_base_sender(
        fx.kem, SUITE.kdf_id, SUITE.aead_id, contents.public_key, info
    )
    ct = sender.seal(b"aad", HPKE_PAYLOAD)
    sealed = time.process_time_ns()
    recipient = hpke.setup_base_recipient(
        fx.kem, SUITE.kdf_id, SUITE.aead_id, enc, fx.key.private_key, info
    )
    pt = recipient.open(b"aad", ct)
    opened = time.process_time_ns()
    if pt != HPKE_PAYLOAD:
        raise RuntimeError("HPKE round trip failed")
    if result is not None:
        result.seal_ns.append(sealed - start)
        result.open_ns.append(opened - sealed)


#: HMAC-SHA256 calls of DHKEM(X25519) + KeySchedule without an exporter
#: (RFC 9180 §4.1, §5.1): ExtractAndExpand's two, then psk_id_hash,
#: info_hash, secret, key and base_nonce.
FLOOR_HMACS: Final = 7


def _hmacs(key: bytes) -> None:
    for _ in range(FLOOR_HMACS):
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(key)
        key = mac.finalize()


def x25519_floor(fx: Fixture, result: Result | None) -> None:
    """The ``cryptography`` calls X25519's HPKE columns cannot do without.

    Sender: an ephemeral key pair, the recipient's key loaded, one exchange,
    the HMACs, an AES-128-GCM key and one seal; recipient: ``enc`` loaded,
    one exchange, the HMACs, a key and one open. Not HPKE (no labels, no
    nonce), only its cost; the gap to the HPKE columns is pyhpke's Python
    and our wrapper around it.
    """
    contents = fx.key.config.contents
    assert contents is not None
    recipient_key = x25519.X25519PrivateKey.from_private_bytes(
        fx.key.private_key.to_bytes()
    )
    nonce = bytes(12)
    start = time.process_time_ns()
    ephemeral = x25519.X25519PrivateKey.generate()
    enc = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(
        x25519.X25519PublicKey.from_public_bytes(contents.public_key)
    )
    _hmacs(shared)
    ct = AESGCM(shared[:16]).encrypt(nonce, HPKE_PAYLOAD, b"aad")
    sealed = time.process_time_ns()
    shared = recipient_key.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    _hmacs(shared)
    AESGCM(shared[:16]).decrypt(nonce, ct, b"aad")
    opened = time.process_time_ns()
    if result is not None:
        result.floor_seal_ns.append(sealed - start)
        result.floor_open_ns.append(opened - sealed)


def run(fixtures: list[Fixture], count: int, warmup: int) -> dict[KEM, Result]:
    results = {fx.kem: Result() for fx in fixtures}
    for round_no in range(warmup + count):
        shift = round_no % len(fixtures)
        for fx in fixtures[shift:] + fixtures[:shift]:
            timed = round_no >= warmup
            result = results[fx.kem]
            cs, ss = Side(), Side()
            client, server, first_flight = handshake(fx, cs, ss)
            check(client, server)
            hpke_only(fx, result if timed else None)
            if fx.kem == KEM.DHKEM_X25519_HKDF_SHA256:
                x25519_floor(fx, result if timed else None)
            result.hello_bytes = first_flight
            if timed:
                result.client_ns.append(cs.ns)
                result.server_ns.append(ss.ns)
    return results


def report(results: dict[KEM, Result], count: int) -> None:
    base = results[KEM.DHKEM_X25519_HKDF_SHA256]
    base_client, base_server = Result.ms(base.client_ns), Result.ms(base.server_ns)
    header = (
        f"{'KEM':<24}{'Npk':>6}{'Nenc':>6}{'CH bytes':>10}"
        f"{'client ms':>11}{'server ms':>11}{'Δclient':>9}{'Δserver':>9}"
        f"{'SetupS+Seal µs':>16}{'SetupR+Open µs':>16}"
    )
    print(header)
    print("-" * len(header))
    for kem, res in results.items():
        client_ms, server_ms = Result.ms(res.client_ns), Result.ms(res.server_ns)
        print(
            f"{LABELS[kem]:<24}{hpke.public_key_length(kem):>6}"
            f"{hpke.enc_length(kem):>6}{res.hello_bytes:>10}"
            f"{client_ms:>11.3f}{server_ms:>11.3f}"
            f"{client_ms - base_client:>+9.3f}{server_ms - base_server:>+9.3f}"
            f"{Result.ms(res.seal_ns) * 1e3:>16.1f}"
            f"{Result.ms(res.open_ns) * 1e3:>16.1f}"
        )
    print()
    print(
        f"{count} ECH-accepted handshakes per KEM; mean CPU per handshake. "
        "Δ: versus X25519."
    )
    print(
        "CH bytes: the client's first flight (ClientHelloOuter record, X25519 "
        "TLS key share;\n  an X25519MLKEM768 key share would add 1184 bytes "
        "to every row)."
    )
    print(
        "HPKE columns: the ECH HPKE operations alone (300-byte payload), "
        "included in the\n  handshake columns."
    )
    floor_seal, floor_open = (
        Result.ms(base.floor_seal_ns),
        Result.ms(base.floor_open_ns),
    )
    hpke_seal, hpke_open = Result.ms(base.seal_ns), Result.ms(base.open_ns)
    print(
        f"X25519 floor (the cryptography calls alone: key pair, exchange,"
        f" {FLOOR_HMACS} HMAC-SHA256,\n  AES-128-GCM): SetupS+Seal"
        f" {floor_seal * 1e3:.1f} µs, SetupR+Open {floor_open * 1e3:.1f} µs;"
        f" pyhpke and our wrapper add\n  {(hpke_seal - floor_seal) * 1e3:+.1f} µs"
        f" ({(hpke_seal - floor_seal) / hpke_seal:.0%} of SetupS+Seal) and"
        f" {(hpke_open - floor_open) * 1e3:+.1f} µs"
        f" ({(hpke_open - floor_open) / hpke_open:.0%} of SetupR+Open)."
    )
    print(f"Machine: {platform.platform()}, {_cpu_model()}")
    print(f"  python {platform.python_implementation()} {platform.python_version()}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="rounds (per KEM)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed rounds first")
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0:
        parser.error("--count must be positive and --warmup not negative")
    fixtures = make_fixtures()
    gc.collect()
    gc.freeze()  # keep the fixtures and imports out of the collections we time
    report(run(fixtures, args.count, args.warmup), args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
