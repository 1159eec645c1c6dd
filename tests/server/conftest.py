"""Fixtures for the service tests: a PKI, ECH keys, in-process and subprocess servers.

* :func:`server_pki`: a CA and leaves for the public and hidden names, as
  objects and files.
* :func:`run_service`: :class:`ech.aio.Server`, observed by ``ech serve``'s
  :class:`ech.serve.connection_log.ConnectionLog`, on 127.0.0.1, port 0, in
  this event loop; always shut down.
* :func:`serve_process`: ``ech serve`` as a subprocess, stdout lines
  (``listening on``, ``metrics on``) parsed; always stopped.
* :func:`fetch`: handshake with :mod:`ech.aio`, GET /, the server's view.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ech.aio import Handler, Limits, Server, TLSStream, open_connection
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.http import fetch_async
from ech.keys import ECHKey, generate_ech_key, write_ech_key
from ech.pki import TestCA
from ech.serve.connection_log import ConnectionLog
from ech.serve.metrics import Metrics
from ech.serve.status_page import serve_status
from ech.server.config import ServerConfig
from ech.tls.certificates import CertifiedKey
from tests.cli.conftest import find_ech_command

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
OTHER_NAME = "other.example"
IO_TIMEOUT = 10.0
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerPKI:
    """A CA, leaves for the public, hidden and other names, and their files."""

    ca: TestCA
    public: CertifiedKey
    hidden: CertifiedKey
    other: CertifiedKey
    directory: Path

    def cert_args(self) -> list[str]:
        """``--cert/--key`` for the three names."""
        args: list[str] = []
        for name in ("public", "hidden", "other"):
            args += [
                "--cert",
                str(self.directory / f"{name}.pem"),
                "--key",
                str(self.directory / f"{name}.key"),
            ]
        return args

    @property
    def ca_file(self) -> Path:
        """The CA certificate file."""
        return self.directory / "ca.pem"

    def server_config(self, keys: Sequence[ECHKey] = (), **kwargs: Any) -> ServerConfig:
        """A config for the three names with ``keys``."""
        return ServerConfig(
            certificates=(self.public, self.hidden, self.other),
            alpn_protocols=("http/1.1",),
            ech_keys=tuple(keys),
            **kwargs,
        )

    def client_config(self, **kwargs: Any) -> ClientConfig:
        """A client trusting the CA, speaking http/1.1."""
        return ClientConfig(
            trust_store=(self.ca.certificate,), alpn_protocols=("http/1.1",), **kwargs
        )


@pytest.fixture(scope="session")
def server_pki(tmp_path_factory: pytest.TempPathFactory) -> ServerPKI:
    """One PKI for the whole session."""
    directory = tmp_path_factory.mktemp("server-pki")
    ca = TestCA.create("ech service test CA")
    (directory / "ca.pem").write_bytes(ca.pem)
    leaves = {}
    for label, name in (
        ("public", PUBLIC_NAME),
        ("hidden", HIDDEN_NAME),
        ("other", OTHER_NAME),
    ):
        leaves[label] = ca.issue(name)
        ca.write(directory, leaves[label], label)
    return ServerPKI(ca, leaves["public"], leaves["hidden"], leaves["other"], directory)


def ech_key(config_id: int) -> ECHKey:
    """A fresh X25519 key for :data:`PUBLIC_NAME`."""
    return generate_ech_key(PUBLIC_NAME, config_id=config_id)


def config_list(*keys: ECHKey) -> ECHConfigList:
    """The keys' configs as one list."""
    return ECHConfigList(tuple(key.config for key in keys))


# in-process --------------------------------------------------------------------


@dataclass
class Running:
    """A started in-process server and the metrics its observer keeps."""

    service: Server
    port: int
    metrics: Metrics


@asynccontextmanager
async def run_service(
    config: ServerConfig | Callable[[], ServerConfig],
    *,
    app: Handler = serve_status,
    limits: Limits | None = None,
) -> AsyncIterator[Running]:
    """Serve on 127.0.0.1:0 until the block ends, then shut down (at once)."""
    metrics = Metrics()
    service = Server(config, app, limits=limits, observer=ConnectionLog(metrics))
    server = await service.start("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Running(service, port, metrics)
    finally:
        await service.shutdown(0)


async def fetch(
    port: int,
    config: ClientConfig,
    server_name: str,
    *,
    ech_configs: ECHConfigList | None = None,
    ech_retry: bool = True,
) -> tuple[TLSStream, dict[str, Any]]:
    """Handshake, GET / with ``Connection: close``; the stream and the page."""
    async with asyncio.timeout(IO_TIMEOUT):
        stream = await open_connection(
            "127.0.0.1",
            port,
            config,
            server_name,
            ech_configs=ech_configs,
            ech_retry=ech_retry,
        )
        try:
            response = await fetch_async(stream, "/", host=server_name)
        finally:
            await stream.close()
    assert response.status_line.startswith("HTTP/1.1 200"), response
    page: dict[str, Any] = json.loads(response.body)
    return stream, page


# subprocess ----------------------------------------------------------------------


@dataclass
class ServeProcess:
    """A running ``ech serve``."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path
    metrics_port: int | None = None
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def log(self) -> str:
        """What it logged so far."""
        return self.log_path.read_text(errors="replace")

    def connections(self) -> list[dict[str, Any]]:
        """The ``connection {json}`` log lines, parsed."""
        found = []
        for line in self.log().splitlines():
            _, sep, text = line.partition(" connection {")
            if sep:
                found.append(json.loads("{" + text))
        return found

    def wait_connections(self, count: int) -> list[dict[str, Any]]:
        """The connection lines, once there are ``count`` (they follow the close)."""
        deadline = time.monotonic() + IO_TIMEOUT
        while len(lines := self.connections()) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {count} connection lines: {self.log()}")
            time.sleep(0.02)
        return lines

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal it and wait; kill it if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def _pump_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _next_line(lines: queue.Queue[str | None], deadline: float) -> str | None:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return lines.get(timeout=remaining)
        except queue.Empty:
            continue


@contextmanager
def serve_process(
    args: Sequence[str | os.PathLike[str]], log_path: Path, *, metrics: bool = False
) -> Iterator[ServeProcess]:
    """``ech serve --listen 127.0.0.1:0 ARGS`` (``--metrics 127.0.0.1:0`` too)."""
    argv = [*find_ech_command(), "serve", "--listen", "127.0.0.1:0"]
    argv += [os.fspath(a) for a in args]
    if metrics:
        argv += ["--metrics", "127.0.0.1:0"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=_pump_lines, args=(process.stdout, lines), daemon=True
    )
    reader.start()
    running = ServeProcess(process, 0, log_path, lines=lines)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        wanted = ["listening on"] + (["metrics on"] if metrics else [])
        for prefix in wanted:
            line = _next_line(lines, deadline)
            if line is None or not line.startswith(prefix):
                pytest.fail(
                    f"ech serve: {line!r} instead of {prefix!r}: {running.log()}"
                )
            port = int(line.rsplit(":", 1)[1])
            if prefix == "listening on":
                running.port = port
            else:
                running.metrics_port = port
        yield running
    finally:
        running.stop()
        reader.join(STOP_TIMEOUT)
        process.stdout.close()


def keygen_rotate(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ech keygen --public-name PUBLIC_NAME --rotate DIR ARGS``."""
    return subprocess.run(
        [
            *find_ech_command(),
            "keygen",
            "--public-name",
            PUBLIC_NAME,
            "--rotate",
            str(directory),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# one ech serve with DoH for a module ---------------------------------------------


@dataclass
class Site:
    """A running ``ech serve --doh /dns-query --http3`` with one ECH key."""

    server: ServeProcess
    configs: ECHConfigList
    ca: Path

    @property
    def doh(self) -> str:
        return f"https://127.0.0.1:{self.server.port}/dns-query"

    @property
    def url(self) -> str:
        """The hidden origin, found through DoH."""
        return f"https://{HIDDEN_NAME}:{self.server.port}/"

    @property
    def loopback(self) -> str:
        """The server by address, for clients given configs (no DNS here)."""
        return f"https://127.0.0.1:{self.server.port}/"

    def connections(self) -> list[dict[str, Any]]:
        """``ech serve``'s connection lines for the site (not DoH's, by address)."""
        names = (HIDDEN_NAME, PUBLIC_NAME)
        return [
            line for line in self.server.connections() if line["server_name"] in names
        ]


@pytest.fixture(scope="module")
def site(
    server_pki: ServerPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("httpx")
    key = ech_key(5)
    write_ech_key(directory / "ech.pem", key)
    # DoH is reached at 127.0.0.1 without SNI: that certificate comes first.
    server_pki.ca.write(directory, server_pki.ca.issue("127.0.0.1"), "loopback")
    args: list[str | Path] = [
        *("--cert", directory / "loopback.pem", "--key", directory / "loopback.key"),
        *server_pki.cert_args(),
        *("--ech-key", directory / "ech.pem", "--doh", "/dns-query", "--http3"),
    ]
    with serve_process(args, directory / "serve.log", metrics=True) as server:
        yield Site(server, config_list(key), server_pki.ca_file)
