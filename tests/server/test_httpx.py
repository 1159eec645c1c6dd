"""``ech.httpx``: httpx transports with ECH, against ``ech serve`` (a subprocess).

One ``ech serve --doh /dns-query --http3`` serves the module: DoH records
for its names (``alpn=h3,h2,http/1.1`` and ``ech`` from its key), the
status page over h2, http/1.1 and h3, and a log line per connection, from
which the tests count connections (pooling) and read the server's view.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
from typing import Any

import httpx
import pytest

from ech.aio import TLSStream
from ech.client.config import ClientConfig
from ech.config import ECHConfig, ECHConfigList
from ech.errors import ECHRejectedError, ECHUnavailableError
from ech.httpx import AsyncECHTransport, ECHTransport
from tests.harness.grease import random_avoiding_config_ids
from tests.harness.serve import find_ech_command, run_ech
from tests.integration.peers import PeerMissingError, curl_get, require_curl_cffi
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    Site,
    config_list,
    ech_key,
    run_service,
)

pytestmark = pytest.mark.timeout(120)


#: The inner name over a connection to 127.0.0.1 (httpcore's extension).
SNI = {"sni_hostname": HIDDEN_NAME}


def page(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    found: dict[str, Any] = json.loads(response.content)
    return found


def wait_lines(site: Site, before: int, count: int) -> list[dict[str, Any]]:
    """The connection lines after the first ``before``, once ``count`` came."""
    deadline = time.monotonic() + IO_TIMEOUT
    while len(lines := site.connections()) < before + count:
        if time.monotonic() > deadline:
            pytest.fail(f"expected {count} more connection lines: {lines}")
        time.sleep(0.02)
    time.sleep(0.1)  # one more would show up now
    return site.connections()[before:]


def test_h2_from_doh_one_pooled_connection(site: Site) -> None:
    """DoH discovery, ECH accepted, HTTP/2 by ALPN, three requests, one connection."""
    before = site.mark()
    transport = ECHTransport(doh=site.doh, cafile=site.ca, http2=True)
    with httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client:
        responses = [client.get(site.url) for _ in range(3)]
    for response in responses:
        assert response.http_version == "HTTP/2"
        assert response.extensions["ech_status"] == "accepted"
        assert response.extensions["outer_server_name"] == PUBLIC_NAME
        assert response.extensions["retried"] is False
        assert response.extensions["ech_reason"] == "accepted"
        assert "the HTTPS record of" in response.extensions["ech_detail"]
        seen = page(response)
        assert (seen["ech_status"], seen["server_name"]) == ("accepted", HIDDEN_NAME)
        assert seen["http_version"] == "h2"
    lines = wait_lines(site, before, 1)
    assert len(lines) == 1, lines  # pooled: one TLS connection for three requests
    assert (lines[0]["ech_status"], lines[0]["alpn"]) == ("accepted", "h2")


def test_http11_keep_alive_reuses_the_connection(site: Site) -> None:
    before = site.mark()
    transport = ECHTransport(
        ech_configs=site.configs, cafile=site.ca, http1=True, http2=False
    )
    with httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client:
        responses = [client.get(site.loopback, extensions=SNI) for _ in range(3)]
    assert [r.http_version for r in responses] == ["HTTP/1.1"] * 3
    assert all(page(r)["ech_status"] == "accepted" for r in responses)
    lines = wait_lines(site, before, 1)
    assert len(lines) == 1, lines
    assert lines[0]["alpn"] == "http/1.1"


def test_rejected_then_retried_on_a_new_connection(site: Site) -> None:
    """A stale config: rejected, one retry with retry_configs, then pooled."""
    before = site.mark()
    stale = config_list(ech_key(6))
    transport = ECHTransport(ech_configs=stale, cafile=site.ca, http2=True)
    with httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client:
        first = client.get(site.loopback, extensions=SNI)
        second = client.get(site.loopback, extensions=SNI)
    for response in (first, second):
        assert response.extensions["ech_status"] == "accepted"
        assert response.extensions["retried"] is True
        assert response.extensions["ech_reason"] == "accepted_after_retry"
        assert page(response)["server_name"] == HIDDEN_NAME
    lines = wait_lines(site, before, 2)
    assert [line["ech_status"] for line in lines] == ["rejected", "accepted"]
    assert lines[0]["alert_received"] == "ech_required"
    assert lines[0]["ech_reason"] == "grease_shaped"  # an unknown X25519 config


def test_rejection_without_retry_is_a_connect_error_with_its_cause(
    site: Site,
) -> None:
    stale = config_list(ech_key(7))
    transport = ECHTransport(ech_configs=stale, cafile=site.ca, ech_retry=False)
    with (
        httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client,
        pytest.raises(httpx.ConnectError) as failed,
    ):
        client.get(site.loopback, extensions=SNI)
    cause = failed.value.__cause__
    assert isinstance(cause, ECHRejectedError)
    assert cause.retry_configs == site.configs
    assert "authenticated as public.example and sent 1 retry config" in str(cause)


def test_grease_when_asked_without_configs(site: Site) -> None:
    transport = ECHTransport(
        cafile=site.ca, config=ClientConfig(ech_grease=True), http2=True
    )
    with httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client:
        response = client.get(site.loopback, extensions=SNI)
    assert response.extensions["ech_status"] == "grease"
    assert response.extensions["ech_reason"] == "grease_requested"
    assert response.extensions["outer_server_name"] == HIDDEN_NAME
    assert f"{HIDDEN_NAME} was visible" in response.extensions["ech_detail"]
    assert page(response)["ech_status"] == "rejected"  # the server cannot tell


def test_strict_mode_without_configs_sends_nothing(site: Site) -> None:
    site.mark()
    before = len(site.server.connections())
    transport = ECHTransport(cafile=site.ca, require_ech=True)
    with (
        httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client,
        pytest.raises(httpx.ConnectError) as failed,
    ):
        client.get(site.loopback, extensions=SNI)
    assert isinstance(failed.value.__cause__, ECHUnavailableError)
    site.mark()
    assert len(site.server.connections()) == before


def test_verify_takes_an_ssl_context_and_refuses_an_unknown_ca(site: Site) -> None:
    context = ssl.create_default_context(cafile=str(site.ca))
    good = ECHTransport(verify=context, ech_configs=site.configs)
    with httpx.Client(transport=good, timeout=IO_TIMEOUT) as client:
        assert client.get(site.loopback, extensions=SNI).status_code == 200
    bad = ECHTransport(ech_configs=site.configs)  # the system store
    with (
        httpx.Client(transport=bad, timeout=IO_TIMEOUT) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(site.loopback, extensions=SNI)


def test_async_h2_from_doh_pooled(site: Site) -> None:
    before = site.mark()

    async def main() -> list[httpx.Response]:
        transport = AsyncECHTransport(doh=site.doh, cafile=site.ca, http2=True)
        async with httpx.AsyncClient(transport=transport, timeout=IO_TIMEOUT) as client:
            return list(await asyncio.gather(*(client.get(site.url) for _ in range(3))))

    responses = asyncio.run(main())
    for response in responses:
        assert response.http_version == "HTTP/2"
        assert response.extensions["ech_status"] == "accepted"
        assert page(response)["server_name"] == HIDDEN_NAME
    lines = wait_lines(site, before, 1)
    assert len(lines) == 1, lines  # three concurrent requests multiplexed


def test_async_retry_and_http11(site: Site) -> None:
    before = site.mark()

    async def main() -> httpx.Response:
        transport = AsyncECHTransport(
            ech_configs=config_list(ech_key(8)), cafile=site.ca
        )
        async with httpx.AsyncClient(transport=transport, timeout=IO_TIMEOUT) as client:
            return await client.get(site.loopback, extensions=SNI)

    response = asyncio.run(main())
    assert response.http_version == "HTTP/1.1"
    assert (response.extensions["ech_status"], response.extensions["retried"]) == (
        "accepted",
        True,
    )
    lines = wait_lines(site, before, 2)
    assert [line["ech_status"] for line in lines] == ["rejected", "accepted"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_http3_pooled_per_origin(site: Site, mode: str) -> None:
    """http3=True: requests go over our HTTP/3 client, one QUIC connection."""
    before = site.mark()
    if mode == "sync":
        transport = ECHTransport(doh=site.doh, cafile=site.ca, http3=True)
        with httpx.Client(transport=transport, timeout=IO_TIMEOUT) as client:
            responses = [client.get(site.url) for _ in range(2)]
    else:

        async def main() -> list[httpx.Response]:
            transport = AsyncECHTransport(doh=site.doh, cafile=site.ca, http3=True)
            async with httpx.AsyncClient(
                transport=transport, timeout=IO_TIMEOUT
            ) as client:
                return [await client.get(site.url) for _ in range(2)]

        responses = asyncio.run(main())
    for response in responses:
        assert response.http_version == "HTTP/3"
        assert response.extensions["ech_status"] == "accepted"
        seen = page(response)
        assert (seen["http_version"], seen["server_name"]) == ("h3", HIDDEN_NAME)
    lines = wait_lines(site, before, 1)
    assert len(lines) == 1, lines
    assert lines[0]["alpn"] == "h3"


def test_httpx2_has_the_same_transports(site: Site) -> None:
    """ech.httpx2: the same transports for httpx2 on httpcore2."""
    import httpx2

    from ech.httpx2 import AsyncECHTransport as Async2
    from ech.httpx2 import ECHTransport as Sync2

    before = site.mark()
    transport = Sync2(doh=site.doh, cafile=site.ca, http2=True)
    with httpx2.Client(transport=transport, timeout=IO_TIMEOUT) as client:
        responses = [client.get(site.url) for _ in range(2)]

    async def main() -> httpx2.Response:
        transport = Async2(ech_configs=config_list(ech_key(9)), cafile=site.ca)
        async with httpx2.AsyncClient(
            transport=transport, timeout=IO_TIMEOUT
        ) as client:
            return await client.get(site.loopback, extensions=SNI)

    retried = asyncio.run(main())
    for response in responses:
        assert response.http_version == "HTTP/2"
        assert response.extensions["ech_status"] == "accepted"
        assert json.loads(response.content)["server_name"] == HIDDEN_NAME
    assert (retried.extensions["ech_status"], retried.extensions["retried"]) == (
        "accepted",
        True,
    )
    lines = wait_lines(site, before, 3)
    assert [line["ech_status"] for line in lines] == [
        "accepted",
        "rejected",
        "accepted",
    ]


def test_ech_get_http2_runs_on_the_transport(site: Site) -> None:
    """``ech get --http2``: h2 by ALPN; the old --json fields and the new ones."""
    got = run_ech(
        find_ech_command(),
        *("get", site.url, "--doh", site.doh, "--ca", site.ca, "--http2", "--json"),
    )
    assert got.returncode == 0, got.stderr
    outcome = json.loads(got.stdout)
    for field in (
        "url",
        "ech_from_dns",
        "ech_status",
        "outer_server_name",
        "server_name",
        "tls_version",
        "cipher_suite",
        "group",
        "alpn",
        "resumed",
        "hello_retry",
        "retried",
        "http_version",
        "http_status",
        "body",
    ):
        assert field in outcome, field  # the contract of --json
    assert (outcome["ech_status"], outcome["http_version"]) == ("accepted", "h2")
    assert outcome["ech_from_dns"] is True
    assert outcome["alpn"] == "h2"
    assert outcome["http_status"] == "HTTP/2 200 OK"
    assert outcome["ech_reason"] == "accepted"
    assert "the HTTPS record of" in outcome["ech_detail"]
    assert json.loads(outcome["body"])["http_version"] == "h2"
    plain = run_ech(
        find_ech_command(),
        *("get", site.url, "--doh", site.doh, "--ca", site.ca, "--json"),
    )
    assert json.loads(plain.stdout)["http_version"] == "http/1.1"  # as before


def test_ech_connect_require_ech_without_configs_sends_nothing(site: Site) -> None:
    site.mark()
    before = len(site.server.connections())
    got = run_ech(
        find_ech_command(),
        *("connect", f"127.0.0.1:{site.server.port}", "--sni", HIDDEN_NAME),
        *("--ca", site.ca, "--require-ech", "--json"),
    )
    assert got.returncode == 1, got
    outcome = json.loads(got.stdout)
    assert outcome["ech_reason"] == "not_requested"
    assert "ECH is required" in outcome["ech_detail"]
    site.mark()
    assert len(site.server.connections()) == before
    accepted = run_ech(
        find_ech_command(),
        *("connect", f"127.0.0.1:{site.server.port}", "--sni", HIDDEN_NAME),
        *("--ca", site.ca, "--require-ech", "--json"),
        *("--ech-config-list", site.configs.to_base64()),
    )
    assert accepted.returncode == 0, accepted
    assert json.loads(accepted.stdout)["ech_reason"] == "accepted"


def diagnose(site: Site, *args: str) -> tuple[int, dict[str, Any]]:
    got = run_ech(find_ech_command(), "diagnose", *args, "--ca", site.ca, "--json")
    return got.returncode, json.loads(got.stdout)


@pytest.mark.parametrize("http3", [False, True], ids=["tcp", "quic"])
def test_ech_diagnose_hidden(site: Site, http3: bool) -> None:
    """DNS to wire: the observer saw public.example and ECH; exit 0."""
    status, report = diagnose(
        site, site.url, "--doh", site.doh, *(["--http3"] if http3 else [])
    )
    assert status == 0, report
    assert report["dns"]["svcb_reliant"] is True
    assert report["ech_configs"]["chosen_config_id"] == 5
    assert report["handshake"]["ech_status"] == "accepted"
    assert report["handshake"]["ech_reason"] == "accepted"
    (seen,) = report["observer"]["connections"]
    assert seen["sni"] == PUBLIC_NAME
    assert seen["alpn"] == (["h3"] if http3 else ["http/1.1"])
    assert seen["ech_extension"]["config_id"] == 5
    assert seen["name_visible"] is False
    assert report["hidden"]
    text = run_ech(
        find_ech_command(), "diagnose", site.url, "--doh", site.doh, "--ca", site.ca
    )
    assert "stayed hidden" in text.stdout, text


def test_ech_diagnose_retry_shows_both_connections(site: Site) -> None:
    stale = config_list(ech_key(11)).to_base64()
    status, report = diagnose(
        site, site.url, "--ech-config-list", stale, "--address", "127.0.0.1"
    )
    assert status == 0, report
    assert report["handshake"]["ech_reason"] == "accepted_after_retry"
    seen = report["observer"]["connections"]
    assert [c["sni"] for c in seen] == [PUBLIC_NAME, PUBLIC_NAME]
    assert [c["ech_extension"]["config_id"] for c in seen] == [11, 5]


def test_ech_diagnose_exits_1_when_the_name_showed(site: Site) -> None:
    """Given configs none of which is usable: GREASE, the name in clear."""
    unusable = ECHConfigList(
        tuple(
            ECHConfig.from_contents(dataclasses.replace(c.contents, kem_id=0x9999))
            for c in site.configs.configs
            if c.contents is not None
        )
    )
    status, report = diagnose(
        site,
        site.url,
        *("--ech-config-list", unusable.to_base64(), "--address", "127.0.0.1"),
    )
    assert status == 1, report
    assert report["handshake"]["ech_status"] == "grease"
    assert report["handshake"]["ech_reason"] == "no_supported_config"
    (seen,) = report["observer"]["connections"]
    assert (seen["sni"], seen["name_visible"]) == (HIDDEN_NAME, True)
    assert report["hidden"] == []
    strict, refused = diagnose(
        site,
        site.url,
        *("--ech-config-list", unusable.to_base64(), "--address", "127.0.0.1"),
        "--require-ech",
    )
    assert strict == 3, refused  # nothing completed (2 is a wrong command line)
    assert refused["observer"]["connections"] == []  # nothing was sent
    assert refused["summary"].endswith("; nothing was sent")
    assert refused["name_visible_to_network"] is False
    assert refused["handshake"]["ech_reason"] == "no_supported_config"


@pytest.mark.interop
def test_curl_cffi_and_our_transport_see_the_same_server(site: Site) -> None:
    """curl_cffi (BoringSSL) and ech.httpx against one ech serve: the same
    outcome for real ECH, and for GREASE the same server reason (grease_shaped)."""
    try:
        require_curl_cffi()
    except PeerMissingError as error:
        pytest.fail(str(error), pytrace=False)
    port = site.server.port
    url = f"https://{HIDDEN_NAME}:{port}/"
    resolve = f"{HIDDEN_NAME}:{port}:127.0.0.1"
    ecl = b"ecl:" + site.configs.to_base64().encode()
    before = site.mark()
    curl_page = curl_get(
        url, resolve=resolve, cafile=site.ca, ech=[ecl, b"hard"]
    ).page()
    curl_grease = curl_get(url, resolve=resolve, cafile=site.ca, ech=[b"grease"]).page()
    ours = ECHTransport(ech_configs=site.configs, cafile=site.ca)
    served = site.configs.configs[0].config_id
    grease_config = ClientConfig(
        ech_grease=True, random=random_avoiding_config_ids(served)
    )
    grease = ECHTransport(cafile=site.ca, config=grease_config)
    with httpx.Client(transport=ours) as client:
        our_page = page(client.get(site.loopback, extensions=SNI))
    with httpx.Client(transport=grease) as client:
        our_grease = page(client.get(site.loopback, extensions=SNI))
    fields = ("ech_status", "server_name", "outer_server_name", "tls_version")
    assert [curl_page[f] for f in fields] == [our_page[f] for f in fields]
    assert curl_page["ech_status"] == "accepted"
    assert curl_page["outer_server_name"] == PUBLIC_NAME
    assert curl_grease["ech_status"] == our_grease["ech_status"] == "rejected"
    lines = wait_lines(site, before, 4)
    reasons = [line["ech_reason"] for line in lines]
    # BoringSSL draws its GREASE config_id at random: one run in 256 it is
    # the served key's, which the server then reports as hpke_open_failed.
    assert reasons[1] in ("grease_shaped", "hpke_open_failed"), lines
    assert [reasons[0], reasons[2], reasons[3]] == [None, None, "grease_shaped"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_httpx_timeouts_apply(server_pki: ServerPKI, mode: str) -> None:
    """httpx's read timeout: a server that never answers gives httpx.ReadTimeout."""
    key = ech_key(12)

    async def silent(stream: TLSStream) -> None:
        await asyncio.sleep(IO_TIMEOUT)

    async def main() -> type[BaseException] | None:
        async with run_service(server_pki.server_config([key]), app=silent) as running:
            url = f"https://127.0.0.1:{running.port}/"
            timeout = httpx.Timeout(IO_TIMEOUT, read=0.3)
            if mode == "async":
                transport = AsyncECHTransport(
                    config=server_pki.client_config(), ech_configs=config_list(key)
                )
                async with httpx.AsyncClient(
                    transport=transport, timeout=timeout
                ) as client:
                    try:
                        await client.get(url, extensions=SNI)
                    except httpx.HTTPError as error:
                        return type(error)
                return None

            def blocking() -> type[BaseException] | None:
                sync = ECHTransport(
                    config=server_pki.client_config(), ech_configs=config_list(key)
                )
                with httpx.Client(transport=sync, timeout=timeout) as client:
                    try:
                        client.get(url, extensions=SNI)
                    except httpx.HTTPError as error:
                        return type(error)
                return None

            return await asyncio.to_thread(blocking)

    assert asyncio.run(main()) is httpx.ReadTimeout
