"""``ech probe`` against servers that are not ours: Go, NSS ``selfserv``, OpenSSL.

Every difference from a pass is asserted here with the reason, so a change
in a peer (or in the probe) shows up:

* Go 1.27 ``crypto/tls`` (``tlspeer server -ech-key``) passes every check
  but three, where Go departs from the RFCs:

  - ``reject-unlisted-suite``: Go trial-decrypts with whatever suite the
    client names, listed or not; RFC 9849 §7.1: "The server verifies that
    the ECHConfig supports the cipher suite indicated by the
    ECHClientHello.cipher_suite ... If not, the server continues to the next
    candidate ECHConfig."
  - ``inner-malformed``: Go answers an EncodedClientHelloInner that does not
    parse with illegal_parameter; RFC 9849 names no alert for it, so RFC
    8446 §6's general rule applies: a message that cannot be parsed is a
    decode_error.
  - ``ech-inner-type``: Go answers an inner-type ECHClientHello from the
    network as a split-mode backend although it holds ECH keys; RFC 9849 §7:
    "A shared mode server which receives a ClientHello with
    ECHClientHello.type of inner MUST abort with an "illegal_parameter"
    alert".

* NSS ``selfserv`` 3.87 (Debian 12) cannot be made an ECH server: ``-X
  publicname:NAME`` encodes the whole argument, prefix included, as the
  public name and fails with SSL_ERROR_RX_MALFORMED_ESNI_KEYS; ``-X`` with a
  key fails to import the raw X25519 key (SEC_ERROR_BAD_DER). The probe
  then reports it as a TLS 1.3 server without ECH.

* OpenSSL through Python's ``ssl`` has no ECH: acceptance fails, GREASE
  passes, the exit status is non-zero.
"""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12

from ech.cli.main import main
from ech.keys import write_ech_key
from ech.pki import TestCA
from ech.probe.attempt import Target
from ech.probe.report import Report, Result
from ech.probe.server import probe_server
from interop.go_peer import GoServer
from tests.harness.pki import NSS_INSTALL
from tests.integration.peers import PeerMissingError
from tests.probe.servers import INNER_NAME, PUBLIC_NAME, config_list, make_key

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


@dataclass(frozen=True)
class Files:
    directory: Path
    ca: TestCA
    ca_file: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("probe-peers")
    ca = TestCA.create("probe peers CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.pem)
    cert, key = ca.write(directory, ca.issue(INNER_NAME, PUBLIC_NAME), "leaf")
    return Files(directory, ca, ca_file, cert, key)


def results(report: Report) -> dict[str, Result]:
    return {r.info.id: r.result for r in report.results}


def assert_no_ech(report: Report) -> None:
    """What a TLS 1.3 server without ECH looks like to the probe."""
    found = results(report)
    assert found["tls13"] is Result.PASS
    assert found["grease"] is Result.PASS
    assert found["grease-hrr"] is Result.PASS
    assert found["accept"] is Result.FAIL
    failing = {k for k, v in found.items() if v in (Result.FAIL, Result.ERROR)}
    assert failing == {"accept"}, report.render()
    assert not report.ok


# Go -----------------------------------------------------------------------------------


GO_DEVIATIONS = {"reject-unlisted-suite", "inner-malformed", "ech-inner-type"}


def test_probe_against_go_server(files: Files) -> None:
    key = make_key(config_id=7)
    key_file = files.directory / "go-ech.pem"
    write_ech_key(key_file, key)
    with GoServer([(files.cert, files.key)], ech_keys=[key_file]) as server:
        report = probe_server(
            Target("127.0.0.1", server.port),
            INNER_NAME,
            config_list(key),
            cafile=str(files.ca_file),
        )
    found = results(report)
    assert len(found) >= 30
    failing = {k for k, v in found.items() if v is not Result.PASS}
    assert failing == GO_DEVIATIONS, report.render()
    assert report.result("ech-inner-type").detail.startswith(
        "the server answered as a split-mode backend"
    )
    assert "illegal_parameter" in report.result("inner-malformed").observed


# NSS selfserv -------------------------------------------------------------------------


def nss_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PeerMissingError(
            f"NSS {name} is not installed; install it with {NSS_INSTALL}"
        )
    return found


@contextmanager
def selfserv(files: Files, *extra: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    db_dir = files.directory / "nssdb"
    if not db_dir.exists():
        db_dir.mkdir()
        certified = files.ca.issue(INNER_NAME, PUBLIC_NAME)
        p12 = files.directory / "leaf.p12"
        private_key = certified.private_key
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        p12.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"server", private_key, certified.chain[0], [], NoEncryption()
            )
        )
        for argv in (
            [nss_tool("certutil"), "-N", "-d", f"sql:{db_dir}", "--empty-password"],
            [nss_tool("pk12util"), "-i", str(p12), "-d", f"sql:{db_dir}", "-W", ""],
        ):
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    process = subprocess.Popen(
        [
            nss_tool("selfserv"),
            "-d",
            f"sql:{db_dir}",
            "-n",
            "server",
            "-p",
            str(port),
            "-V",
            "tls1.3:tls1.3",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process, port
    finally:
        process.kill()
        process.communicate(timeout=10)


def wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("selfserv exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError("selfserv did not listen")


def test_nss_selfserv_cannot_serve_ech_here(files: Files) -> None:
    """Both ``-X`` forms of selfserv 3.87 fail to configure ECH (see above)."""
    key = make_key(config_id=5)
    raw = key.private_key.to_bytes()
    data = len(raw).to_bytes(2, "big") + raw + config_list(key).encode()
    for params in ("publicname:" + PUBLIC_NAME, base64.b64encode(data).decode()):
        with selfserv(files, "-X", params) as (process, _):
            _, stderr = process.communicate(timeout=20)
        assert "configureEch failed" in stderr, stderr


def test_probe_against_nss_selfserv_without_ech(files: Files) -> None:
    with selfserv(files) as (process, port):
        wait_listening(port, process)
        report = probe_server(
            Target("127.0.0.1", port),
            INNER_NAME,
            config_list(make_key(config_id=7)),
            cafile=str(files.ca_file),
        )
    assert_no_ech(report)


# Python ssl (OpenSSL) -----------------------------------------------------------------


@contextmanager
def ssl_server(files: Files) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(files.cert, files.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(5)
            try:
                with context.wrap_socket(sock, server_side=True) as tls:
                    tls.recv(1024)
            except (OSError, ssl.SSLError):
                sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def test_probe_reports_python_ssl_as_ech_unsupported(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key(config_id=7)
    with ssl_server(files) as port:
        report = probe_server(
            Target("127.0.0.1", port),
            INNER_NAME,
            config_list(key),
            cafile=str(files.ca_file),
        )
        assert_no_ech(report)
        status = main(
            [
                "probe",
                f"127.0.0.1:{port}",
                "--sni",
                INNER_NAME,
                "--ech-config-list",
                config_list(key).to_base64(),
                "--ca",
                str(files.ca_file),
                "--only",
                "accept",
                "grease",
            ]
        )
    assert status == 1
    out = capsys.readouterr().out
    assert "FAIL    accept " in out
    assert "pass    grease " in out
