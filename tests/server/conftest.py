"""Fixtures for the service tests: a PKI, ECH keys, in-process and subprocess servers.

* :func:`server_pki`: a CA and leaves for the public and hidden names, as
  objects and files.
* :func:`run_service`: :class:`ech.aio.Server`, observed by ``ech serve``'s
  :class:`ech.serve.connection_log.ConnectionLog`, on 127.0.0.1, port 0, in
  this event loop; always shut down.
* ``ech serve`` as a subprocess is :func:`tests.harness.serve.serve_process`.
* :func:`fetch`: handshake with :mod:`ech.aio`, GET /, the server's view.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ech.aio import Handler, Limits, Server, TLSStream, open_connection
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.keys import ECHKey, generate_ech_key, write_ech_key
from ech.pki import TestCA
from ech.serve.connection_log import ConnectionLog
from ech.serve.metrics import Metrics
from ech.serve.status_page import serve_status
from ech.server.config import ServerConfig
from ech.tls.certificates import CertifiedKey
from tests.harness.http import get_status_async
from tests.harness.pki import TestPKI
from tests.harness.serve import ServeProcess, run_ech, serve_process

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
OTHER_NAME = "other.example"
IO_TIMEOUT = 10.0


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
    pki = TestPKI.create(tmp_path_factory.mktemp("server-pki"), "ech service test CA")
    leaves = {
        label: pki.leaf(label, name).certified
        for label, name in (
            ("public", PUBLIC_NAME),
            ("hidden", HIDDEN_NAME),
            ("other", OTHER_NAME),
        )
    }
    return ServerPKI(
        pki.ca, leaves["public"], leaves["hidden"], leaves["other"], pki.directory
    )


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
            page = await get_status_async(stream, server_name)
        finally:
            await stream.close()
    return stream, page


def keygen_rotate(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ech keygen --public-name PUBLIC_NAME --rotate DIR ARGS``."""
    return run_ech(
        None, "keygen", "--public-name", PUBLIC_NAME, "--rotate", directory, *args
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

    def mark(self) -> int:
        """How many site connection lines there are, once every connection closed.

        A connection's line is written when the server sees it close, which
        may come after the client moved on; ``ech serve`` writes it before
        the connection leaves ``ech_connections_open``. The TCP and QUIC
        servers each set that gauge, so it must read 0 and the number of
        lines must hold still for a moment: then no earlier line is late.
        """
        assert self.server.metrics_port is not None
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        deadline = time.monotonic() + IO_TIMEOUT
        last = -1
        while True:
            with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as response:
                text = response.read().decode()
            count = len(self.server.connections())
            if "\nech_connections_open 0\n" in text and count == last:
                return len(self.connections())
            if time.monotonic() > deadline:
                raise AssertionError(f"connections stay open: {text}")
            last = count
            time.sleep(0.2)

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
