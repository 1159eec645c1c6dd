"""CPU cost of one full TLS 1.3 handshake, client and server side apart.

Three implementations run in-memory in this one process, with the same
parameters: X25519 key exchange, an ECDSA P-256 leaf issued by a P-256 CA,
TLS_AES_128_GCM_SHA256, no session tickets, and the client validating the
server's certificate path and name against the CA:

* ``ech``: this package's sans-IO ``ClientConnection`` / ``ServerConnection``.
* ``aioquic.tls``: aioquic's TLS ``Context`` pair. It has no record layer
  (QUIC protects packets), so it does no AEAD work at all.
* ``ssl (OpenSSL)``: the standard library's ``SSLObject`` over ``MemoryBIO``.

Every call into a side (constructing its connection object included) is
timed with ``time.process_time_ns`` (``--clock perf`` for wall time) and
counted toward that side. The certificates and the shared configuration
objects (``ClientConfig``, ``ServerConfig``, ``SSLContext``) are made once.
Implementations run interleaved, one handshake each per round, in rotating
order, to spread drift evenly.

Run it with ``make bench``, which runs ``.venv/bin/python
benchmarks/handshake.py``; ``--count N`` sets the handshakes per
implementation (default 300, after 20 warm-up rounds). ``--profile``
instead runs our handshakes under cProfile, profiling only the server side
(or ``--profile client``), and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import platform
import pstats
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import aioquic.tls as aq
from aioquic._buffer import Buffer  # aioquic.buffer does not re-export it
from cryptography.hazmat.backends.openssl import backend as crypto_backend
from cryptography.hazmat.primitives.asymmetric import ec
from timing import Side, pump

import ech
from ech.pki import TestCA

SERVER_NAME = "example.test"
CIPHER = "TLS_AES_128_GCM_SHA256"
Clock = Callable[[], int]


@dataclass(frozen=True)
class Fixture:
    """Certificates and per-implementation configuration, made once."""

    ca: TestCA
    leaf: ech.CertifiedKey
    ech_client: ech.ClientConfig
    ech_server: ech.ServerConfig
    ssl_client: ssl.SSLContext
    ssl_server: ssl.SSLContext
    ssl_suite_note: str


@dataclass
class Result:
    """Per-handshake times of one implementation."""

    client_ns: list[int] = field(default_factory=list)
    server_ns: list[int] = field(default_factory=list)
    negotiated: str = ""


Handshake = Callable[[Fixture, Side, Side], str]


# --- setup -------------------------------------------------------------------


def _restrict_tls13_suites(ctx: ssl.SSLContext, suites: str) -> bool:
    """Call SSL_CTX_set_ciphersuites, which Python < 3.13 does not expose.

    The SSL_CTX pointer is the first field after the object header of
    CPython's PySSLContext. Returns False when that cannot be done.
    """
    if hasattr(ctx, "set_ciphersuites"):  # newer Pythons
        ctx.set_ciphersuites(suites)
        return True
    if platform.python_implementation() != "CPython":
        return False
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        set_suites = lib.SSL_CTX_set_ciphersuites
    except (ImportError, AttributeError, OSError):
        return False
    set_suites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    set_suites.restype = ctypes.c_int
    get_options = lib.SSL_CTX_get_options
    get_options.argtypes = [ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    # Make sure the pointer is the SSL_CTX before writing through it.
    if not ssl_ctx or get_options(ssl_ctx) != ctx.options:
        return False
    if set_suites(ssl_ctx, suites.encode()) != 1:
        return False
    tls13 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]
    return tls13 == [suites]


def make_fixture() -> Fixture:
    ca = TestCA.create(key_type="p256")
    leaf = ca.issue(SERVER_NAME, key_type="p256")
    suite = ech.CipherSuite.TLS_AES_128_GCM_SHA256
    x25519 = ech.NamedGroup.X25519
    ech_client = ech.ClientConfig(
        trust_store=(ca.certificate,),
        cipher_suites=(suite,),
        key_share_groups=(x25519,),
        groups=(x25519,),
    )
    ech_server = ech.ServerConfig(
        certificates=(leaf,),
        groups=(x25519,),
        cipher_suites=(suite,),
        session_tickets=False,
    )

    ssl_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies name and chain
    ssl_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    restricted = True
    for ctx in (ssl_client, ssl_server):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_ecdh_curve("X25519")
        restricted = _restrict_tls13_suites(ctx, CIPHER) and restricted
    ssl_client.load_verify_locations(cadata=ca.pem.decode())
    ssl_server.num_tickets = 0
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = ca.write(Path(tmp), leaf, "leaf")
        ssl_server.load_cert_chain(cert_path, key_path)
    note = (
        "TLS 1.3 suites limited via SSL_CTX_set_ciphersuites (ctypes)"
        if restricted
        else "could not limit TLS 1.3 suites; OpenSSL defaults apply"
    )
    return Fixture(ca, leaf, ech_client, ech_server, ssl_client, ssl_server, note)


# --- the three handshakes ----------------------------------------------------


def handshake_ech(fx: Fixture, cs: Side, ss: Side) -> str:
    with cs:
        client = ech.ClientConnection(fx.ech_client, SERVER_NAME)
        client.start()
        to_server = client.data_to_send()
    with ss:
        server = ech.ServerConnection(fx.ech_server)
    pump(client, server, to_server, cs, ss)
    suite = client.cipher_suite
    group = client.group
    return f"{suite.name if suite else '?'} / {group.name if group else '?'}"


def _aioquic_buffers() -> dict[aq.Epoch, Buffer]:
    return {
        aq.Epoch.INITIAL: Buffer(capacity=4096),
        aq.Epoch.HANDSHAKE: Buffer(capacity=4096),
        aq.Epoch.ONE_RTT: Buffer(capacity=4096),
    }


def _drain(buffers: dict[aq.Epoch, Buffer]) -> bytes:
    data = b"".join(buf.data for buf in buffers.values())
    for buf in buffers.values():
        buf.seek(0)
    return data


def handshake_aioquic(fx: Fixture, cs: Side, ss: Side) -> str:
    suites = [aq.CipherSuite.AES_128_GCM_SHA256]
    key = fx.leaf.private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("expected a P-256 leaf key")
    with cs:
        client = aq.Context(
            is_client=True,
            cadata=fx.ca.pem,
            cipher_suites=suites,
            server_name=SERVER_NAME,
        )
        # The default offers key shares for P-256, P-384, X25519 and X448.
        client._supported_groups = [aq.Group.X25519]
        client_buf = _aioquic_buffers()
        client.handle_message(b"", client_buf)
        to_server = _drain(client_buf)
    with ss:
        server = aq.Context(is_client=False, cipher_suites=suites)
        server._supported_groups = [aq.Group.X25519]
        server.certificate = fx.leaf.chain[0]
        server.certificate_private_key = key
        server_buf = _aioquic_buffers()
    to_client = b""
    done = (aq.State.CLIENT_POST_HANDSHAKE, aq.State.SERVER_POST_HANDSHAKE)
    while (client.state, server.state) != done:
        if not to_server and not to_client:
            raise RuntimeError("aioquic handshake stalled")
        if to_server:
            with ss:
                server.handle_message(to_server, server_buf)
                to_client = _drain(server_buf)
            to_server = b""
        if to_client:
            with cs:
                client.handle_message(to_client, client_buf)
                to_server = _drain(client_buf)
            to_client = b""
    schedule = client.key_schedule
    suite = schedule.cipher_suite.name if schedule else "?"
    group = "X25519" if client._x25519_private_key is not None else "?"
    return f"{suite} / {group}"


def _step(obj: ssl.SSLObject) -> bool:
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


def handshake_ssl(fx: Fixture, cs: Side, ss: Side) -> str:
    with cs:
        c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = fx.ssl_client.wrap_bio(c_in, c_out, server_hostname=SERVER_NAME)
        client_done = _step(client)
        to_server = c_out.read()
    with ss:
        s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        server = fx.ssl_server.wrap_bio(s_in, s_out, server_side=True)
    server_done = False
    to_client = b""
    while not (client_done and server_done):
        if not to_server and not to_client:
            raise RuntimeError("ssl handshake stalled")
        if to_server:
            with ss:
                s_in.write(to_server)
                server_done = _step(server)
                to_client = s_out.read()
            to_server = b""
        if to_client:
            with cs:
                c_in.write(to_client)
                client_done = _step(client)
                to_server = c_out.read()
            to_client = b""
    cipher = client.cipher()
    return f"{cipher[0] if cipher else '?'} / X25519 (only group enabled)"


IMPLEMENTATIONS: dict[str, Handshake] = {
    "ech": handshake_ech,
    "aioquic.tls": handshake_aioquic,
    "ssl (OpenSSL)": handshake_ssl,
}
BASELINE = "aioquic.tls"


# --- running -----------------------------------------------------------------


def run(fx: Fixture, count: int, warmup: int, clock: Clock) -> dict[str, Result]:
    results = {name: Result() for name in IMPLEMENTATIONS}
    names = list(IMPLEMENTATIONS)
    for round_no in range(warmup + count):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            cs, ss = Side(clock), Side(clock)
            negotiated = IMPLEMENTATIONS[name](fx, cs, ss)
            if round_no >= warmup:
                result = results[name]
                result.client_ns.append(cs.ns)
                result.server_ns.append(ss.ns)
                result.negotiated = negotiated
    return results


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


def report(results: dict[str, Result], fx: Fixture, count: int, clock: str) -> None:
    def mean(values: Sequence[int]) -> float:
        return statistics.fmean(values)

    base = results[BASELINE]
    base_client, base_server = mean(base.client_ns), mean(base.server_ns)
    header = (
        f"{'impl':<14}{'client ms/hs':>13}{'server ms/hs':>14}{'total':>9}"
        f"{'p50 total':>11}{'server vs aioquic':>19}{'client vs aioquic':>19}"
    )
    print(header)
    print("-" * len(header))
    for name, res in results.items():
        client, server = mean(res.client_ns), mean(res.server_ns)
        totals = [c + s for c, s in zip(res.client_ns, res.server_ns, strict=True)]
        print(
            f"{name:<14}{_ms(client):>13}{_ms(server):>14}{_ms(client + server):>9}"
            f"{_ms(statistics.median(totals)):>11}"
            f"{server / base_server:>18.2f}x{client / base_client:>18.2f}x"
        )
    print()
    print(f"{count} handshakes per implementation, mean {clock} time per handshake.")
    print("Negotiated:")
    for name, res in results.items():
        print(f"  {name:<14}{res.negotiated}")
    print("Notes:")
    print("  ech client time includes certificate path validation and name")
    print("    checking (cryptography.x509.verification, against the one CA).")
    print("  aioquic.tls has no record layer (QUIC protects packets): no AEAD")
    print("    work; it validates the chain with pyOpenSSL plus")
    print("    service_identity, reparsing the CA PEM on every handshake.")
    print(f"  ssl: {fx.ssl_suite_note};")
    print("    the client verifies chain and hostname.")
    print("  ech and OpenSSL send a middlebox-compatibility change_cipher_spec.")
    print_machine()


def print_machine() -> None:
    print("Machine:")
    print(f"  platform      {platform.platform()} ({platform.machine()})")
    print(f"  processor     {_cpu_model()}")
    print(f"  python        {platform.python_implementation()} {sys.version}")
    print(f"  ssl           {ssl.OPENSSL_VERSION}")
    print(
        f"  cryptography  {version('cryptography')}, "
        f"{crypto_backend.openssl_version_text()}"
    )
    print(f"  aioquic       {version('aioquic')}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def profile(fx: Fixture, count: int, warmup: int, side: str) -> None:
    for _ in range(warmup):
        handshake_ech(fx, Side(time.process_time_ns), Side(time.process_time_ns))
    profiler = cProfile.Profile()
    for _ in range(count):
        on = Side(time.process_time_ns, profiler)
        off = Side(time.process_time_ns)
        if side == "server":
            handshake_ech(fx, off, on)
        else:
            handshake_ech(fx, on, off)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs()
    print(f"cProfile of ech {side} side, {count} handshakes")
    for key in ("cumulative", "tottime"):
        print(f"\n=== top 25 by {key} ===")
        stats.sort_stats(key).print_stats(25)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="handshakes per impl")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first")
    parser.add_argument(
        "--clock",
        choices=("process", "perf"),
        default="process",
        help="process: CPU time (process_time_ns); perf: wall (perf_counter_ns)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="server",
        choices=("server", "client"),
        help="cProfile our server (default) or client side instead of timing",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0:
        parser.error("--count must be positive and --warmup not negative")

    fx = make_fixture()
    gc.collect()
    gc.freeze()  # keep the fixture and imports out of the collections we time
    if args.profile:
        profile(fx, args.count, args.warmup, args.profile)
        return 0
    clock = time.process_time_ns if args.clock == "process" else time.perf_counter_ns
    results = run(fx, args.count, args.warmup, clock)
    report(results, fx, args.count, "CPU" if args.clock == "process" else "wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
