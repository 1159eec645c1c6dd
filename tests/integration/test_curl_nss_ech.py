"""ECH interop: curl_cffi (BoringSSL) and NSS ``tstclnt`` against ``ech serve``.

One real ``ech serve`` subprocess serves the module. It holds two ECH keys
made by ``ech keygen`` (a P-256 one first, then an X25519 one, both for
:data:`PUBLIC_NAME`) and separate certificates for :data:`PUBLIC_NAME` and
:data:`INNER_NAME`, so rejections can be authenticated (interop.md lesson 8).
Each client GETs the status page, which reports what the server saw.

Both clients use only X25519 ECH configs (NSS rejects a list holding only
P-256 ones). A missing peer fails these tests with what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ech.config import ECHConfigList
from ech.http import encode_request
from tests.harness.pki import TestPKI, write_nss_db
from tests.harness.serve import ServeProcess, ech_keygen, serve_args, serve_process
from tests.integration.peers import (
    CurlOutcome,
    NSSTools,
    PeerMissingError,
    TstclntOutcome,
    curl_get,
    find_nss_tools,
    require_curl_cffi,
    run_tstclnt,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

PUBLIC_NAME = "public.test"
"""The ECH public_name: the client-facing server's own name."""

INNER_NAME = "secret.test"
"""The name the clients want, sent only inside the encrypted ClientHello."""

CURL_ECH_REQUIRED = 101
"""``CURLE_ECH_REQUIRED``: curl's error when the server rejected ECH."""


@dataclass(frozen=True)
class Deployment:
    """The running ``ech serve`` and what clients need to reach it."""

    server: ServeProcess
    ca_path: Path
    x25519: ECHConfigList
    """The X25519 config alone (the list both clients can use)."""
    published: ECHConfigList
    """Every config the server holds, P-256 first: its retry_configs."""
    stale: ECHConfigList
    """An X25519 config for PUBLIC_NAME whose key the server does not have."""

    @property
    def port(self) -> int:
        """The port ``ech serve`` listens on (127.0.0.1)."""
        return self.server.port


def raw_configs(configs: ECHConfigList) -> set[bytes]:
    """The encoded configs of a list, ignoring order."""
    return {config.raw for config in configs.configs}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Keys from ``ech keygen``, certificates from a test CA, ``ech serve``."""
    pki = TestPKI.create(tmp_path_factory.mktemp("curl-nss-ech"))
    directory = pki.directory
    leaves = [pki.leaf("public", PUBLIC_NAME), pki.leaf("inner", INNER_NAME)]
    certificates = [(leaf.cert_path, leaf.key_path) for leaf in leaves]
    p256 = ech_keygen(PUBLIC_NAME, directory / "ech-p256.pem", kem="p256")
    x25519 = ech_keygen(PUBLIC_NAME, directory / "ech-x25519.pem")
    stale = ech_keygen(PUBLIC_NAME, directory / "ech-stale.pem")
    args = serve_args(
        certificates, [directory / "ech-p256.pem", directory / "ech-x25519.pem"]
    )
    args.append("--http3")  # HTTP/3 on the same port, for curl's QUIC
    with serve_process(args, directory / "serve.log") as server:
        yield Deployment(
            server=server,
            ca_path=pki.ca_path,
            x25519=x25519,
            published=ECHConfigList(p256.configs + x25519.configs),
            stale=stale,
        )
        log = server.log()
    assert "Traceback" not in log, f"ech serve logged an exception:\n{log}"


def check_accepted(page: dict[str, Any], *, hello_retry: bool = False) -> None:
    """The status page of an ECH-accepted connection to :data:`INNER_NAME`."""
    assert page["ech_status"] == "accepted", page
    assert page["server_name"] == INNER_NAME, page
    assert page["outer_server_name"] == PUBLIC_NAME, page
    assert page["tls_version"] == "TLSv1.3", page
    assert page["hello_retry"] is hello_retry, page


# -- curl_cffi ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def curl_cffi_version() -> str:
    """Fail (never skip) when curl_cffi is missing."""
    try:
        return require_curl_cffi()
    except PeerMissingError as error:
        missing = str(error)
    pytest.fail(missing, pytrace=False)


def curl(
    deployment: Deployment,
    ech: list[bytes],
    curves: str | None = None,
    *,
    http3: bool = False,
) -> CurlOutcome:
    """curl GET https://INNER_NAME:PORT/ resolved to 127.0.0.1."""
    return curl_get(
        f"https://{INNER_NAME}:{deployment.port}/",
        resolve=f"{INNER_NAME}:{deployment.port}:127.0.0.1",
        cafile=deployment.ca_path,
        ech=ech,
        curves=curves,
        http3=http3,
    )


def ecl(configs: ECHConfigList) -> bytes:
    """The ``CURLOPT_ECH`` value giving curl ``configs``."""
    return b"ecl:" + configs.to_base64().encode()


@pytest.mark.usefixtures("curl_cffi_version")
class TestCurl:
    """curl_cffi (libcurl + BoringSSL) as the ECH client."""

    def test_accepted(self, deployment: Deployment) -> None:
        outcome = curl(deployment, [ecl(deployment.x25519), b"hard"])
        check_accepted(outcome.page())
        assert "ECH: ECHConfig from command line" in outcome.log

    def test_accepted_with_p256_config_listed_first(
        self, deployment: Deployment
    ) -> None:
        # BoringSSL skips the P-256 config and uses the X25519 one.
        outcome = curl(deployment, [ecl(deployment.published), b"hard"])
        check_accepted(outcome.page())

    def test_accepted_after_hello_retry_request(self, deployment: Deployment) -> None:
        # A P-521 share only: our server asks again for X25519.
        outcome = curl(
            deployment, [ecl(deployment.x25519), b"hard"], curves="P-521:X25519"
        )
        check_accepted(outcome.page(), hello_retry=True)

    def test_stale_config_rejected_with_retry_configs(
        self, deployment: Deployment
    ) -> None:
        outcome = curl(deployment, [ecl(deployment.stale), b"hard"])
        assert outcome.error_code == CURL_ECH_REQUIRED, outcome
        assert "ECH_REJECTED" in outcome.error, outcome.error
        retry = outcome.retry_configs()
        assert retry is not None, f"curl logged no retry_configs:\n{outcome.log}"
        assert raw_configs(retry) == raw_configs(deployment.published)

        # What an application does next: retry with the configs it was given.
        check_accepted(curl(deployment, [ecl(retry), b"hard"]).page())

    def test_grease_looks_like_a_rejection(self, deployment: Deployment) -> None:
        outcome = curl(deployment, [b"grease"])
        assert "ECH: will GREASE ClientHello" in outcome.log
        page = outcome.page()
        # The server cannot tell GREASE from a config it lacks.
        assert page["ech_status"] == "rejected", page
        assert page["server_name"] == INNER_NAME, page
        assert page["outer_server_name"] == INNER_NAME, page

    def test_accepted_over_http3(self, deployment: Deployment) -> None:
        """ECH inside QUIC (RFC 9001): BoringSSL's client, our engine in aioquic."""
        outcome = curl(deployment, [ecl(deployment.x25519), b"hard"], http3=True)
        page = outcome.page()
        check_accepted(page)
        assert (page["http_version"], page["alpn"]) == ("h3", "h3"), page

    def test_grease_over_http3_connects(self, deployment: Deployment) -> None:
        outcome = curl(deployment, [b"grease"], http3=True)
        assert "ECH: will GREASE ClientHello" in outcome.log
        page = outcome.page()
        assert page["http_version"] == "h3", page
        assert page["ech_status"] == "rejected", page  # GREASE looks like one
        assert page["server_name"] == INNER_NAME, page


# -- NSS tstclnt -------------------------------------------------------------------


@pytest.fixture(scope="session")
def nss_tools() -> NSSTools:
    """Fail (never skip) when the NSS tools are missing."""
    try:
        return find_nss_tools()
    except PeerMissingError as error:
        missing = str(error)
    pytest.fail(missing, pytrace=False)


@dataclass(frozen=True)
class NSSClient:
    """tstclnt with a database trusting the deployment's CA."""

    tools: NSSTools
    db: str
    request: Path
    deployment: Deployment

    def get(self, *extra: str) -> TstclntOutcome:
        """tstclnt -a INNER_NAME to the server, sending one GET."""
        return run_tstclnt(
            self.tools,
            self.db,
            self.deployment.port,
            INNER_NAME,
            self.request,
            *extra,
        )


@pytest.fixture(scope="module")
def nss(
    nss_tools: NSSTools,
    deployment: Deployment,
    tmp_path_factory: pytest.TempPathFactory,
) -> NSSClient:
    """An NSS database trusting the test CA and the request file."""
    directory = tmp_path_factory.mktemp("nss")
    db = write_nss_db(directory / "db", deployment.ca_path, certutil=nss_tools.certutil)
    request = directory / "request.http"
    request.write_bytes(encode_request("GET", "/", host=INNER_NAME))
    return NSSClient(nss_tools, db, request, deployment)


class TestTstclnt:
    """NSS tstclnt as the ECH client."""

    def test_accepted(self, nss: NSSClient) -> None:
        outcome = nss.get("-N", nss.deployment.x25519.to_base64())
        check_accepted(outcome.page())

    def test_accepted_with_p256_config_listed_first(self, nss: NSSClient) -> None:
        outcome = nss.get("-N", nss.deployment.published.to_base64())
        check_accepted(outcome.page())

    def test_accepted_after_hello_retry_request(self, nss: NSSClient) -> None:
        outcome = nss.get("-N", nss.deployment.x25519.to_base64(), "-I", "P521,x25519")
        check_accepted(outcome.page(), hello_retry=True)

    def test_stale_config_rejected_with_retry_configs(self, nss: NSSClient) -> None:
        # NSS checks the public name's certificate against INNER_NAME even
        # after a rejection; -o lets it go on to report the retry configs.
        outcome = nss.get("-N", nss.deployment.stale.to_base64(), "-o")
        assert outcome.returncode != 0, outcome
        assert "SSL_ERROR_ECH_RETRY_WITH_ECH" in outcome.stderr, outcome.stderr
        retry = outcome.retry_configs()
        assert retry is not None, f"no retry_configs from tstclnt:\n{outcome.stderr}"
        assert raw_configs(retry) == raw_configs(nss.deployment.published)

        check_accepted(nss.get("-N", retry.to_base64()).page())

    def test_grease_looks_like_a_rejection(self, nss: NSSClient) -> None:
        page = nss.get("-i", "32").page()
        assert page["ech_status"] == "rejected", page
        assert page["server_name"] == INNER_NAME, page
        assert page["outer_server_name"] == INNER_NAME, page
