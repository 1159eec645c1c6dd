"""``ech probe-client`` against clients that are not ours: Go, curl_cffi, NSS.

The misbehaving server runs in a thread; the client runs once per step
(ten steps) and, where it can, retries by itself. Our own client passes
every check (``tests/cli/test_probe.py``). The others' differences are
asserted here, with the reason:

* Go 1.27 (``tlspeer client -ech-retry``) passes every check but
  ``malformed-retry-configs``: it keeps retry_configs as raw bytes
  (``ECHRejectionError.RetryConfigList``) without parsing them, and aborts
  with ech_required; RFC 9849 §6.1.6: "If the server sent an
  "encrypted_client_hello" extension in EncryptedExtensions, the client MUST
  check that it is syntactically valid and abort the connection with a
  "decode_error" alert otherwise."
* curl_cffi (libcurl + BoringSSL) does not retry on rejection: it reports
  it to the application (RFC 9849 §6.1.6: a client SHOULD retry; "If the
  client does not retry, it MUST report an error to the calling
  application"), so ``reject-retry`` fails (a SHOULD, not a MUST) and
  ``second-rejection`` cannot be shown (not_applicable). It also fails
  ``retry-configs-unauthenticated``: after the rejection it accepts a
  certificate valid for the inner name but not for public_name, finishes
  the handshake and sends ech_required; RFC 9849 §6.1.7: the client "MUST
  verify that the certificate is valid for ECHConfig.contents.public_name".
  It accepts the public_name certificate too, so on a rejected connection
  it does not hold the certificate to public_name alone. (BoringSSL leaves
  that name to the application's verifier, ``SSL_get0_ech_name_override``;
  our reading is that libcurl does not use it.)
* NSS ``tstclnt`` verifies the certificate against the inner name even
  after a rejection (interop.md lesson 6): it refuses the public_name
  certificate with bad_certificate instead of finishing the handshake and
  sending ech_required (``reject-retry``, and so ``second-rejection``), and
  accepts an inner-name certificate on a rejected connection
  (``retry-configs-unauthenticated``): RFC 9849 §6.1.6, §6.1.7. It does
  not retry either.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ech.http.client import encode_request
from ech.keys import ECHKey
from ech.pki import TestCA
from ech.probe.client import probe_client
from ech.probe.report import Report, Result
from ech.tls.certificates import CertifiedKey
from interop.go_peer import GoClientError, run_go_client
from tests.harness.pki import write_nss_db
from tests.integration.peers import (
    PeerMissingError,
    curl_get,
    find_nss_tools,
    run_tstclnt,
)
from tests.probe.servers import INNER_NAME, PUBLIC_NAME, config_list, make_key

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

STEPS = 10


@dataclass(frozen=True)
class Setup:
    directory: Path
    ca_file: Path
    inner: CertifiedKey
    public: CertifiedKey
    key: ECHKey

    @property
    def config_list(self) -> str:
        return config_list(self.key).to_base64()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    directory = tmp_path_factory.mktemp("probe-clients")
    ca = TestCA.create("probe clients CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.pem)
    return Setup(
        directory,
        ca_file,
        ca.issue(INNER_NAME),
        ca.issue(PUBLIC_NAME),
        make_key(config_id=7),
    )


@contextmanager
def probing(setup: Setup) -> Iterator[tuple[int, dict[str, Report]]]:
    """The probe-client in a thread; yields its port and, at the end, the report."""
    listener = socket.create_server(("127.0.0.1", 0))
    out: dict[str, Report] = {}
    log = io.StringIO()

    def serve() -> None:
        out["report"] = probe_client(
            listener,
            (setup.inner, setup.public),
            setup.key,
            timeout=20,
            grace=2,
            out=log,
        )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], out
    finally:
        thread.join(120)
        listener.close()
    assert "report" in out, log.getvalue()


def run_steps(setup: Setup, once: Callable[[int], None]) -> Report:
    with probing(setup) as (port, out):
        for _ in range(STEPS):
            once(port)
    return out["report"]


def results(report: Report) -> dict[str, Result]:
    return {r.info.id: r.result for r in report.results}


CURL_DIFFERENCES = {
    "reject-retry": Result.FAIL,
    "retry-configs-unauthenticated": Result.FAIL,
    "second-rejection": Result.NOT_APPLICABLE,
}
NSS_DIFFERENCES = {
    "reject-retry": Result.FAIL,
    "retry-configs-unauthenticated": Result.FAIL,
    "second-rejection": Result.FAIL,
}


def test_probe_client_against_go(setup: Setup) -> None:
    def once(port: int) -> None:
        with contextlib.suppress(GoClientError):  # most steps are meant to fail
            run_go_client(
                port,
                INNER_NAME,
                setup.ca_file,
                ech_config_list=setup.config_list,
                ech_retry=True,
                allow_ech_rejection=True,
                timeout=20,
            )

    report = run_steps(setup, once)
    found = results(report)
    assert len(found) == STEPS
    differences = {k: v for k, v in found.items() if v is not Result.PASS}
    assert differences == {"malformed-retry-configs": Result.FAIL}, report.render()
    assert "ech_required" in report.result("malformed-retry-configs").observed


def test_probe_client_against_curl_cffi(setup: Setup) -> None:
    def once(port: int) -> None:
        curl_get(
            f"https://{INNER_NAME}:{port}/",
            resolve=f"{INNER_NAME}:{port}:127.0.0.1",
            cafile=setup.ca_file,
            ech=[b"ecl:" + setup.config_list.encode(), b"hard"],
        )

    report = run_steps(setup, once)
    found = results(report)
    assert len(found) == STEPS
    differences = {k: v for k, v in found.items() if v is not Result.PASS}
    assert differences == CURL_DIFFERENCES, report.render()
    assert "did not retry" in report.result("reject-retry").observed
    unauthenticated = report.result("retry-configs-unauthenticated").observed
    assert "ech_required" in unauthenticated


def test_probe_client_against_nss_tstclnt(setup: Setup) -> None:
    try:
        tools = find_nss_tools()
    except PeerMissingError as error:
        pytest.fail(str(error), pytrace=False)
    db = write_nss_db(setup.directory / "nssdb", setup.ca_file, certutil=tools.certutil)
    request = setup.directory / "request.http"
    request.write_bytes(encode_request("GET", "/", host=INNER_NAME))

    def once(port: int) -> None:
        run_tstclnt(tools, db, port, INNER_NAME, request, "-N", setup.config_list)

    report = run_steps(setup, once)
    found = results(report)
    assert len(found) == STEPS
    differences = {k: v for k, v in found.items() if v is not Result.PASS}
    assert differences == NSS_DIFFERENCES, report.render()
    assert "bad_certificate" in report.result("reject-retry").observed
    unauthenticated = report.result("retry-configs-unauthenticated").observed
    assert "ech_required" in unauthenticated
