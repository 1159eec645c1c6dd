"""``ech serve`` under load, beside a Python ``ssl`` asyncio server.

Both servers run as subprocesses on 127.0.0.1 with the same P-256
certificate and answer ``GET /`` with a small JSON page:

* ``ech serve`` (this package), with an ECH key loaded;
* a reference server: ``asyncio.start_server(ssl=...)``, TLS 1.3 only
  (OpenSSL through the standard library), started by this script with
  ``--serve-ssl``.

One load generator drives both: ``--clients`` concurrent asyncio clients
using the ``ssl`` module (TLS 1.3, no certificate verification, so the
generator costs little), each repeating connect, handshake, one GET with
``Connection: close``, close, for ``--duration`` seconds. Reported per
server: handshakes/s, p50/p99 handshake latency (connect to handshake
done), the server's CPU time per handshake (utime+stime from
``/proc/PID/stat``, independent of how fast the generator is), peak RSS
(``VmHWM``), and RSS per idle connection: after a warm-up, ``--idle``
connections are opened, their handshakes completed, and the server's
``VmRSS`` delta divided by their number.

An extra row runs ECH-accepted handshakes against ``ech serve`` with our
own client (``ech.aio``); the ``ssl`` module cannot do ECH. Its throughput
is bounded by the Python client sharing the machine; its server CPU per
handshake is the meaningful figure. Its idle connections are opened with
that client too, offering ECH, so they are ECH-accepted connections: the
ones the memory target names.

Targets (printed, never asserted): throughput within 1.5x of the ``ssl``
server's, and at most 16 KiB per idle ECH-accepted connection (and per
idle connection without ECH).

Run: ``.venv/bin/python benchmarks/server_load.py [--clients 32]
[--duration 8] [--idle 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ech.aio import open_connection
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.keys import generate_ech_key, write_ech_key
from ech.pki import TestCA

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
STARTUP_TIMEOUT = 20.0
IO_TIMEOUT = 30.0
THROUGHPUT_TARGET = 1.5
IDLE_TARGET_KIB = 16.0
REQUEST = b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"


# the reference server -----------------------------------------------------------------


def run_ssl_server(
    cert: str, key: str, *, port: int = 0, reuse_port: bool = False
) -> None:
    """``--serve-ssl``: the Python ``ssl`` asyncio server; prints its address.

    ``reuse_port`` lets several of these processes share ``port``
    (``SO_REUSEPORT``), as ``benchmarks/workers_load.py`` runs them.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    page = json.dumps({"server": "ssl", "tls_version": "TLSv1.3"}).encode() + b"\n"

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                async with asyncio.timeout(60):
                    head = await reader.readuntil(b"\r\n\r\n")
                close = b"connection: close" in head.lower()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(page)}\r\n".encode()
                    + (b"Connection: close\r\n\r\n" if close else b"\r\n")
                    + page
                )
                await writer.drain()
                if close:
                    break
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(
            handler,
            "127.0.0.1",
            port,
            ssl=context,
            backlog=1024,
            reuse_port=reuse_port or None,
        )
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# processes ----------------------------------------------------------------------------


@dataclass
class Process:
    """A server subprocess and its address."""

    name: str
    popen: subprocess.Popen[str]
    port: int = 0

    def status(self, field_name: str) -> int:
        """A ``kB`` field of ``/proc/PID/status``, in bytes."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field_name)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far (utime + stime)."""
        stat = Path(f"/proc/{self.popen.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def started(name: str, argv: list[str], log: Path) -> Iterator[Process]:
    """Start a server, wait for ``listening on``, always stop it."""
    with log.open("w") as stderr:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            text=True,
        )  # fmt: skip
    process = Process(name, popen)
    try:
        assert popen.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        line = ""
        while time.monotonic() < deadline and not line.startswith("listening on"):
            line = popen.stdout.readline()
            if not line and popen.poll() is not None:
                break
        if not line.startswith("listening on"):
            raise RuntimeError(f"{name} did not start: {log.read_text()}")
        process.port = int(line.rsplit(":", 1)[1])
        yield process
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
        if popen.stdout is not None:
            popen.stdout.close()


# the load generator -------------------------------------------------------------------


def ssl_client_context() -> ssl.SSLContext:
    """TLS 1.3, no verification: the generator should cost little."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


Handshake = Callable[[int], Awaitable[tuple[float, Callable[[], Awaitable[None]]]]]


def ssl_handshake(context: ssl.SSLContext) -> Handshake:
    """Connect and handshake; returns the latency and a function doing the GET."""

    async def handshake(port: int) -> tuple[float, Callable[[], Awaitable[None]]]:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=PUBLIC_NAME
        )
        latency = time.perf_counter() - started

        async def get() -> None:
            try:
                writer.write(REQUEST % PUBLIC_NAME.encode())
                await writer.drain()
                await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError, ssl.SSLError):
                    await writer.wait_closed()

        return latency, get

    return handshake


def ech_handshake(config: ClientConfig, configs: ECHConfigList) -> Handshake:
    """The same with ``ech.aio`` and ECH to the hidden name."""

    async def handshake(port: int) -> tuple[float, Callable[[], Awaitable[None]]]:
        started = time.perf_counter()
        stream = await open_connection(
            "127.0.0.1", port, config, HIDDEN_NAME, ech_configs=configs
        )
        latency = time.perf_counter() - started
        if str(stream.negotiated.ech_status) != "accepted":
            raise RuntimeError("ECH was not accepted")

        async def get() -> None:
            try:
                await stream.send(REQUEST % HIDDEN_NAME.encode())
                while await stream.recv():
                    pass
            finally:
                await stream.close()

        return latency, get

    return handshake


@dataclass
class Row:
    """One server's figures."""

    label: str
    handshakes: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    idle_kib: float | None = None
    idle_count: int = 0

    @property
    def rate(self) -> float:
        """Handshakes per second."""
        return self.handshakes / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the handshake latencies (seconds)."""
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[
            int(q) - 1
        ]


async def drive(
    port: int, handshake: Handshake, clients: int, duration: float, row: Row
) -> None:
    """``clients`` workers repeating handshake + GET for ``duration`` seconds."""
    deadline = time.monotonic() + duration

    async def worker() -> None:
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(IO_TIMEOUT):
                    latency, get = await handshake(port)
                    await get()
            except Exception:  # counted, and the run goes on
                row.errors += 1
                await asyncio.sleep(0.01)
                continue
            row.latencies.append(latency)
            row.handshakes += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    row.seconds = time.monotonic() - started


#: Opens one connection to a port and leaves it idle; returns what aborts it
#: (and keeps it open until then: a StreamWriter closes its transport when
#: it is collected).
IdleOpener = Callable[[int], Awaitable[Callable[[], None]]]


def ssl_idle(context: ssl.SSLContext) -> IdleOpener:
    """An idle TLS 1.3 connection from the ``ssl`` module (no ECH)."""

    async def open_idle(port: int) -> Callable[[], None]:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=PUBLIC_NAME
        )
        return lambda: writer.transport.abort()

    return open_idle


def ech_idle(config: ClientConfig, configs: ECHConfigList) -> IdleOpener:
    """An idle ECH-accepted connection to the hidden name, from ``ech.aio``."""

    async def open_idle(port: int) -> Callable[[], None]:
        stream = await open_connection(
            "127.0.0.1", port, config, HIDDEN_NAME, ech_configs=configs
        )
        if str(stream.negotiated.ech_status) != "accepted":
            raise RuntimeError("ECH was not accepted")
        return lambda: stream.writer.transport.abort()

    return open_idle


async def idle_connections(
    process: Process, warm_up: Handshake, open_idle: IdleOpener, count: int, row: Row
) -> None:
    """Open ``count`` idle connections; the server's RSS delta per one."""
    warm = Row("warm-up")
    await drive(process.port, warm_up, 4, 1.0, warm)
    await asyncio.sleep(0.5)
    before = process.status("VmRSS")
    held: list[Callable[[], None]] = []
    gate = asyncio.Semaphore(32)

    async def one() -> None:
        async with gate:
            held.append(await open_idle(process.port))

    try:
        async with asyncio.timeout(IO_TIMEOUT * 4):
            await asyncio.gather(*(one() for _ in range(count)))
        await asyncio.sleep(1.0)  # let the server finish (tickets, app waiting)
        after = process.status("VmRSS")
        row.idle_count = len(held)
        row.idle_kib = (after - before) / len(held) / 1024
    finally:
        for abort in held:
            abort()
        await asyncio.sleep(0.5)


async def measure(
    process: Process,
    label: str,
    handshake: Handshake,
    clients: int,
    duration: float,
    idle: int,
    open_idle: IdleOpener,
) -> Row:
    row = Row(label)
    if idle:
        await idle_connections(process, handshake, open_idle, idle, row)
    cpu = process.cpu_seconds()
    await drive(process.port, handshake, clients, duration, row)
    row.cpu_seconds = process.cpu_seconds() - cpu
    row.peak_rss = process.status("VmHWM")
    return row


# main ---------------------------------------------------------------------------------


def ech_command() -> list[str]:
    script = shutil.which("ech", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "ech"]


def print_table(rows: list[Row], clients: int) -> None:
    header = (
        f"{'server':<44} {'hs/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv CPU ms/hs':>13} {'peak RSS MiB':>12} {'KiB/idle conn':>13} {'err':>4}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        idle = f"{row.idle_kib:.1f}" if row.idle_kib is not None else "-"
        cpu = row.cpu_seconds * 1000 / row.handshakes if row.handshakes else 0.0
        print(
            f"{row.label:<44} {row.rate:>7.0f} {row.percentile(50) * 1000:>7.1f} "
            f"{row.percentile(99) * 1000:>7.1f} {cpu:>13.2f} "
            f"{row.peak_rss / 2**20:>12.1f} {idle:>13} {row.errors:>4}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--no-ech-row", action="store_true")
    parser.add_argument("--serve-ssl", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    if args.serve_ssl:
        run_ssl_server(*args.serve_ssl)
        return 0

    with tempfile.TemporaryDirectory(prefix="ech-load-") as tmp:
        directory = Path(tmp)
        ca = TestCA.create("load CA")
        cert, key = ca.write(directory, ca.issue(PUBLIC_NAME, HIDDEN_NAME), "leaf")
        ech_key = generate_ech_key(PUBLIC_NAME)
        write_ech_key(directory / "ech.pem", ech_key)
        configs = ECHConfigList((ech_key.config,))
        context = ssl_client_context()
        # One process, like the ssl server: its CPU and RSS are what is read
        # (the default, one worker per CPU, would leave only the supervisor's).
        # benchmarks/workers_load.py measures --workers N.
        ech_argv = [
            *ech_command(), "serve", "--listen", "127.0.0.1:0", "--workers", "1",
            "--cert", str(cert), "--key", str(key),
            "--ech-key", str(directory / "ech.pem"),
            "--max-connections", str(max(4 * args.idle, 1024)),
        ]  # fmt: skip
        ssl_argv = [sys.executable, __file__, "--serve-ssl", str(cert), str(key)]
        print(
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{ssl.OPENSSL_VERSION}, {os.cpu_count()} CPUs; {args.clients} clients "
            f"x {args.duration:g} s each; {args.idle} idle connections; "
            "generator: ssl module (asyncio), in this process",
            flush=True,
        )
        rows: list[Row] = []

        async def run() -> None:
            with started("ssl", ssl_argv, directory / "ssl.log") as reference:
                rows.append(
                    await measure(
                        reference, "Python ssl asyncio server (TLS 1.3)",
                        ssl_handshake(context), args.clients, args.duration,
                        args.idle, ssl_idle(context),
                    )
                )  # fmt: skip
            with started("ech", ech_argv, directory / "ech.log") as ours:
                rows.append(
                    await measure(
                        ours, "ech serve (TLS 1.3, client without ECH)",
                        ssl_handshake(context), args.clients, args.duration,
                        args.idle, ssl_idle(context),
                    )
                )  # fmt: skip
            if args.no_ech_row:
                return
            # A fresh process: one that ran the rows above would reuse the
            # memory they freed and under-report the idle connections' RSS.
            ech_client = ClientConfig(
                trust_store=(ca.certificate,), alpn_protocols=("http/1.1",)
            )
            with started("ech", ech_argv, directory / "ech-ech.log") as ours:
                rows.append(
                    await measure(
                        ours, "ech serve, ECH accepted (ech.aio client)*",
                        ech_handshake(ech_client, configs),
                        min(args.clients, 8), args.duration, args.idle,
                        ech_idle(ech_client, configs),
                    )
                )  # fmt: skip

        asyncio.run(run())
    print()
    print_table(rows, args.clients)
    reference, ours = rows[0], rows[1]
    ratio = reference.rate / ours.rate if ours.rate else float("inf")
    verdict = "met" if ratio <= THROUGHPUT_TARGET else "NOT met"
    print()
    print(
        f"target: throughput within {THROUGHPUT_TARGET}x of ssl: ssl/ech = "
        f"{ratio:.2f}x -> {verdict}"
    )
    kinds = ("connection without ECH", "ECH-accepted connection")
    for row, kind in zip(rows[1:], kinds, strict=False):
        if row.idle_kib is not None:
            verdict = "met" if row.idle_kib <= IDLE_TARGET_KIB else "NOT met"
            print(
                f"target: <= {IDLE_TARGET_KIB:g} KiB per idle {kind}: "
                f"{row.idle_kib:.1f} KiB -> {verdict}"
            )
    if len(rows) > 2:
        print(
            "* ECH row: at most 8 clients, throughput bounded by the Python client "
            "on the same CPUs; compare the server CPU per handshake."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
