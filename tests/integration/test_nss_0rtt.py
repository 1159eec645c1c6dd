"""0-RTT against NSS (``selfserv`` and ``tstclnt`` from libnss3-tools), both roles.

Python's ``ssl`` cannot do 0-RTT and Go's crypto/tls has no 0-RTT client, so
NSS is the peer here:

* our client and NSS's server (``selfserv -u -Z``): selfserv creates its
  anti-replay context when it starts and declines all early data during the
  first window (about ten seconds with NSS 3.87): a fresh selfserv gives the
  rejected case, one past its window the accepted one.
* NSS's client (``tstclnt -u -Z -L 2``: a full handshake, then a resumption
  offering 0-RTT) and our server, plain and with ECH (``-N``): tstclnt
  writes its request as 0-RTT data only if it is ready before the
  ServerHello arrives, so our server waits a moment before answering.

NSS's ECH server cannot be set up here: Debian's selfserv 3.87 fails both
``-X publicname:NAME`` ("malformed ESNI keys structure") and ``-X <key and
configs>`` ("ECH key import failed"), so 0-RTT with ECH is tested with NSS
as the client only.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12

import ech
from ech.blocking import TLSSocket, connect, wrap_server
from ech.config import ECHConfigList
from ech.events import EarlyDataReceived, EarlyDataStatus, ECHStatus
from ech.keys import generate_ech_key
from ech.pki import TestCA
from tests.harness.pki import NSS_INSTALL, write_nss_db
from tests.integration.conftest import IO_TIMEOUT, ThreadedServer
from tests.integration.peers import NSSTools, find_nss_tools, run_tstclnt

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

Serve = Callable[[Callable[[socket.socket], Any]], ThreadedServer[Any]]

NAME = "example.test"
PUBLIC_NAME = "public.test"
REQUEST = b"GET /early HTTP/1.0\r\n\r\n"
#: How long a fresh selfserv declines 0-RTT, at most (see the docstring).
NSS_REPLAY_WINDOW = 25.0


@dataclass(frozen=True)
class NSS:
    """The NSS tools and a PKI on disk for them."""

    tools: NSSTools
    selfserv: str
    pk12util: str
    ca: TestCA
    directory: Path
    client_db: str
    leaf: ech.CertifiedKey

    def server_db(self) -> str:
        """A database holding the CA and ``leaf`` with its key, as ``server``."""
        directory = self.directory / "server-db"
        if not directory.exists():
            db = write_nss_db(
                directory, self.directory / "ca.pem", certutil=self.tools.certutil
            )
            p12 = self.directory / "server.p12"
            p12.write_bytes(
                pkcs12.serialize_key_and_certificates(
                    b"server",
                    self.leaf.private_key,  # type: ignore[arg-type]
                    self.leaf.chain[0],
                    None,
                    NoEncryption(),
                )
            )
            result = subprocess.run(
                [self.pk12util, "-i", str(p12), "-d", db, "-W", ""],
                capture_output=True,
                text=True,
                timeout=IO_TIMEOUT,
                check=False,
            )
            assert result.returncode == 0, result.stderr
        return f"sql:{directory}"


@pytest.fixture(scope="module")
def nss(tmp_path_factory: pytest.TempPathFactory) -> NSS:
    try:
        tools = find_nss_tools()
    except RuntimeError as error:
        pytest.fail(str(error))
    found = {name: shutil.which(name) for name in ("selfserv", "pk12util")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(f"NSS tools not found: {', '.join(missing)}; install {NSS_INSTALL}")
    directory = tmp_path_factory.mktemp("nss-0rtt")
    ca = TestCA.create("nss 0-rtt CA")
    (directory / "ca.pem").write_bytes(ca.pem)
    return NSS(
        tools=tools,
        selfserv=str(found["selfserv"]),
        pk12util=str(found["pk12util"]),
        ca=ca,
        directory=directory,
        client_db=write_nss_db(
            directory / "client-db", directory / "ca.pem", certutil=tools.certutil
        ),
        leaf=ca.issue(NAME, PUBLIC_NAME),
    )


# -- selfserv ------------------------------------------------------------------------


@dataclass
class Selfserv:
    """A running ``selfserv`` (one process, which we stop by its pid)."""

    process: subprocess.Popen[bytes]
    port: int
    started: float


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _selfserv(nss: NSS) -> Iterator[Selfserv]:
    port = _free_port()
    command = [nss.selfserv, "-d", nss.server_db(), "-n", "server"]
    command += ["-p", str(port), "-V", "tls1.3:tls1.3", "-u", "-Z"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1),
            ):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read() if process.stderr else b""
                raise AssertionError(f"selfserv did not start: {stderr!r}")
            time.sleep(0.05)
        yield Selfserv(process, port, time.monotonic())
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="module")
def old_selfserv(nss: NSS) -> Iterator[Selfserv]:
    """A selfserv started when the module starts: past its window later on."""
    with _selfserv(nss) as server:
        yield server


def _client_config(nss: NSS) -> ech.ClientConfig:
    return ech.ClientConfig(trust_store=(nss.ca.certificate,))


def _ticket(port: int, config: ech.ClientConfig) -> ech.SessionTicket:
    """A full handshake with selfserv and an HTTP request: its ticket."""
    with connect("127.0.0.1", port, config, NAME, timeout=IO_TIMEOUT) as tls:
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        _read_all(tls)
        (ticket, *_) = tls.session_tickets
    assert ticket.max_early_data_size > 0, "selfserv -Z allows no early data"
    return ticket


def _read_all(tls: TLSSocket) -> bytes:
    """Everything until the server closes (selfserv resets, it does not close)."""
    data = bytearray()
    with contextlib.suppress(ConnectionError, ech.ConnectionClosedError):
        while chunk := tls.recv():
            data += chunk
    return bytes(data)


def _early_request(
    port: int, config: ech.ClientConfig, ticket: ech.SessionTicket
) -> tuple[ech.HandshakeComplete, bytes]:
    tls = connect(
        "127.0.0.1", port, config, NAME, session=ticket, early_data=REQUEST,
        timeout=IO_TIMEOUT,
    )  # fmt: skip
    with tls:
        done = tls.negotiated
        if done.early_data is not EarlyDataStatus.ACCEPTED:
            tls.sendall(REQUEST)  # what an application does: send it again
        return done, _read_all(tls)


def test_nss_server_declines_0rtt_in_its_replay_window(nss: NSS) -> None:
    """RFC 8446 §8: a server that cannot tell replays declines; the data
    then goes again after the handshake, in 1-RTT."""
    config = _client_config(nss)
    with _selfserv(nss) as server:
        ticket = _ticket(server.port, config)
        done, response = _early_request(server.port, config, ticket)
    assert done.resumed
    assert done.early_data is EarlyDataStatus.REJECTED
    assert b"200 OK" in response
    assert REQUEST in response  # selfserv echoes the request it read


# -- tstclnt against our server -------------------------------------------------------


@dataclass
class Served:
    """What our server saw on one connection."""

    handshake: ech.HandshakeComplete
    early: bytes
    request: bytes


@dataclass
class OurServer:
    """Our server for tstclnt: answers HTTP, after a pause, with the request."""

    configs: list[ech.ServerConfig]
    pause: float = 0.2
    served: list[Served] = field(default_factory=list)

    def __call__(self, conn: socket.socket) -> Served:
        # tstclnt sends its request as 0-RTT data only if it has written it
        # before our ServerHello arrives.
        time.sleep(self.pause)
        config = self.configs[min(len(self.served), len(self.configs) - 1)]
        tls = wrap_server(conn, config)
        try:
            early = b"".join(
                e.data for e in tls.events if isinstance(e, EarlyDataReceived)
            )
            request = early
            while b"\r\n\r\n" not in request:
                chunk = tls.recv()
                if not chunk:
                    break
                request += chunk
            tls.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + request)
            served = Served(tls.negotiated, early, request)
            self.served.append(served)
            return served
        finally:
            tls.close()


def _tstclnt(nss: NSS, port: int, server_name: str, *extra: str) -> str:
    request = nss.directory / "request.txt"
    request.write_bytes(REQUEST)
    outcome = run_tstclnt(
        nss.tools, nss.client_db, port, server_name, request,
        "-u", "-Z", "-L", "2", *extra,
    )  # fmt: skip
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout.count(b"200 OK") == 2, outcome.stdout
    return outcome.stderr


def test_nss_client_0rtt_to_our_server(nss: NSS, serve: Serve) -> None:
    config = ech.ServerConfig(certificates=(nss.leaf,), max_early_data_size=16384)
    handler = OurServer([config])
    server = serve(handler)
    _tstclnt(nss, server.port, NAME)
    first, second = server.result(), server.result()
    assert first.handshake.early_data is EarlyDataStatus.NOT_OFFERED
    assert second.handshake.resumed
    assert second.handshake.early_data is EarlyDataStatus.ACCEPTED
    assert second.early == REQUEST  # it came in 0-RTT
    assert second.request == REQUEST


def test_nss_client_0rtt_with_ech_to_our_server(nss: NSS, serve: Serve) -> None:
    """tstclnt offers ECH, resumes with ClientHelloInner's PSK and sends its
    request as 0-RTT under it (RFC 9849 §6.1)."""
    key = generate_ech_key(PUBLIC_NAME)
    config = ech.ServerConfig(
        certificates=(nss.leaf,), ech_keys=(key,), max_early_data_size=16384
    )
    server = serve(OurServer([config]))
    configs = ECHConfigList((key.config,))
    _tstclnt(nss, server.port, NAME, "-N", configs.to_base64())
    first, second = server.result(), server.result()
    for served in (first, second):
        assert served.handshake.ech_status is ECHStatus.ACCEPTED
        assert served.handshake.server_name == NAME
        assert served.handshake.outer_server_name == PUBLIC_NAME
    assert second.handshake.resumed
    assert second.handshake.early_data is EarlyDataStatus.ACCEPTED
    assert second.early == REQUEST


def test_our_server_declines_nss_0rtt(nss: NSS, serve: Serve) -> None:
    """The ticket allows 0-RTT, the server no longer takes it: the early
    records are skipped by trial decryption (RFC 8446 §4.2.10) and tstclnt
    sends the request again after the handshake."""
    issuing = ech.ServerConfig(certificates=(nss.leaf,), max_early_data_size=16384)
    declining = ech.ServerConfig(
        certificates=(nss.leaf,), ticket_key=issuing.ticket_key
    )
    server = serve(OurServer([issuing, declining]))
    stderr = _tstclnt(nss, server.port, NAME, "-v")
    _, second = server.result(), server.result()
    assert second.handshake.resumed
    assert second.handshake.early_data is EarlyDataStatus.REJECTED
    assert second.early == b""
    assert second.request == REQUEST
    # tstclnt did send it as 0-RTT, and says so (with -v):
    assert f"Early data rejected. Re-sending {len(REQUEST)} bytes" in stderr


# -- our client against selfserv, once it is past its window -------------------------


def test_our_client_0rtt_to_nss_server(nss: NSS, old_selfserv: Selfserv) -> None:
    """selfserv accepts our early request once its replay window has passed,
    and answers it."""
    config = _client_config(nss)
    deadline = old_selfserv.started + NSS_REPLAY_WINDOW
    while True:
        ticket = _ticket(old_selfserv.port, config)
        done, response = _early_request(old_selfserv.port, config, ticket)
        if done.early_data is EarlyDataStatus.ACCEPTED or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert done.resumed
    assert done.early_data is EarlyDataStatus.ACCEPTED
    assert REQUEST in response
