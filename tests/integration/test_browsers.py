"""Real browsers as ECH clients: Chromium and Firefox ESR (Debian), headless.

Each test runs in a private network namespace (:mod:`tests.integration.browsers`)
so the browser can use ``https://example.test/`` on port 443 and reach
nothing but our servers. The browser finds the ECH configs the only way
browsers do: an HTTPS record, looked up over DoH in secure/strict mode
(Chromium ``"mode": "secure"``, Firefox ``network.trr.mode=3``). The page it
loads is ``ech serve``'s status page, which reports what the server saw.

* accepted: ``ech serve --doh /dns-query`` is both the DoH server (its zone
  publishes its own ECH config and address) and the web server;
* rejected, then retried: BIND publishes a stale config (key OLD) while
  ``ech serve`` holds only key NEW. The server cannot decrypt the browser's
  first ClientHelloInner, completes the handshake as ``public.test`` with
  NEW in ``retry_configs``; the browser must retry with NEW. The page then
  says ``accepted``: only the retry configs could have given it NEW.

A missing browser (or certutil, unshare, ip, named) fails with the Debian
package to install; see BROWSER_INSTALL_NOTES.txt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ech.config import ECHConfigList
from ech.dns.publish import https_record_line
from ech.keys import generate_ech_key, write_ech_key
from tests.harness.pki import TestPKI
from tests.harness.serve import serve_args
from tests.integration.browsers import (
    BROWSER_PROGRAMS,
    BindSpec,
    BrowserMissingError,
    Result,
    Scenario,
    ServerSpec,
    find_program,
    run_scenario,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

INNER_NAME = "example.test"
"""The name the browser loads; sent only inside the encrypted ClientHello."""
PUBLIC_NAME = "public.test"
"""The ECH public_name, the client-facing server's own name."""
URL = f"https://{INNER_NAME}/"
DOH_URL = "https://127.0.0.1/dns-query"
"""``ech serve --doh`` on 127.0.0.1:443 inside the namespace."""
BROWSERS = ("chromium", "firefox")


@dataclass(frozen=True)
class BrowserPKI:
    """A CA and the server certificates."""

    ca_cert: Path
    public_cert: Path
    public_key: Path
    """``public.test`` and ``127.0.0.1``: the client-facing certificate,
    also the DoH server's (first, so a connection without SNI gets it)."""
    inner_cert: Path
    inner_key: Path
    """``example.test`` only."""


@pytest.fixture(scope="module")
def browser_pki(tmp_path_factory: pytest.TempPathFactory) -> BrowserPKI:
    pki = TestPKI.create(tmp_path_factory.mktemp("browser-pki"), "ech browser test CA")
    public = pki.leaf("public", PUBLIC_NAME, "127.0.0.1")
    inner = pki.leaf("inner", INNER_NAME)
    return BrowserPKI(
        pki.ca_path, public.cert_path, public.key_path, inner.cert_path, inner.key_path
    )


@pytest.fixture(params=BROWSERS)
def browser(request: pytest.FixtureRequest) -> str:
    """Each browser in turn; fails (never skips) when it is not installed."""
    name: str = request.param
    try:
        find_program(BROWSER_PROGRAMS[name])
    except BrowserMissingError as error:
        pytest.fail(str(error), pytrace=False)
    return name


def ech_serve_args(
    pki: BrowserPKI, ech_key: Path, *, doh: bool, http3: bool = False
) -> list[str]:
    """``ech serve`` (on 127.0.0.1:443) with both certificates and ``ech_key``."""
    args = serve_args(
        [(pki.public_cert, pki.public_key), (pki.inner_cert, pki.inner_key)],
        [ech_key],
        doh_path="/dns-query" if doh else None,
    )
    return [*args, "--http3"] if http3 else args


def make_ech_key(path: Path, config_id: int) -> ECHConfigList:
    key = generate_ech_key(PUBLIC_NAME, config_id=config_id)
    write_ech_key(path, key)
    return ECHConfigList((key.config,))


def run(scenario: Scenario) -> Result:
    try:
        return run_scenario(scenario)
    except BrowserMissingError as error:
        pytest.fail(str(error), pytrace=False)


def assert_accepted(result: Result) -> None:
    """The page and the server's log both say ECH was accepted for INNER_NAME."""
    status = result.page_status()
    expected = {
        "ech_status": "accepted",
        "server_name": INNER_NAME,
        "outer_server_name": PUBLIC_NAME,
        "tls_version": "TLSv1.3",
    }
    got = {k: status.get(k) for k in expected}
    assert got == expected, result.describe()
    logged = [
        h
        for h in result.handshakes("ech-serve")
        if h["ech_status"] == "accepted" and h["server_name"] == INNER_NAME
    ]
    assert logged, f"no accepted handshake in the server log:\n{result.describe()}"
    assert all(h["outer_server_name"] == PUBLIC_NAME for h in logged)
    # The inner name never went out in clear: no connection without accepted
    # ECH named it (connection lines cover failed handshakes too).
    events = result.server_events("ech-serve", "connection")
    clear = [
        e
        for e in events
        if e["ech_status"] != "accepted" and e["server_name"] == INNER_NAME
    ]
    assert not clear, result.describe()


def ech_required_connections(result: Result) -> list[dict[str, Any]]:
    """Connections the browser closed with ``ech_required`` (it was rejected)."""
    return [
        c
        for c in result.server_events("ech-serve", "connection")
        if c["alert_received"] == "ech_required"
    ]


def assert_rejected_first(browser: str, result: Result) -> None:
    """The server saw the rejection: ECH ``rejected``, then ``ech_required``.

    ``ech serve`` logs each connection as it ends, failed handshakes
    included: the browser's first connection was ECH ``rejected`` (the
    handshake authenticated as the public name, carrying retry_configs) and
    the browser closed it with ``ech_required`` (RFC 9849 §6.1.6). Firefox's
    own log names the retry as well.
    """
    rejected = ech_required_connections(result)
    assert rejected, f"no rejected connection logged:\n{result.describe()}"
    for connection in rejected:
        assert connection["ech_status"] == "rejected", result.describe()
        assert connection["outer_server_name"] == PUBLIC_NAME, result.describe()
        assert connection["server_name"] in (PUBLIC_NAME, None), result.describe()
    if browser == "firefox":
        ech_log = result.logs.get("firefox-ech", "")
        assert "SSL_ERROR_ECH_RETRY_WITH_ECH" in ech_log, result.describe()


def test_ech_accepted(browser: str, browser_pki: BrowserPKI, tmp_path: Path) -> None:
    """DoH from ``ech serve --doh`` gives the browser the config; ECH is accepted."""
    ech_key = tmp_path / "ech.pem"
    make_ech_key(ech_key, config_id=7)
    scenario = Scenario(
        browser=browser,
        url=URL,
        workdir=str(tmp_path / "run"),
        ca_cert=str(browser_pki.ca_cert),
        servers=[
            ServerSpec("ech-serve", ech_serve_args(browser_pki, ech_key, doh=True))
        ],
        doh_url=DOH_URL,
    )
    result = run(scenario)
    assert_accepted(result)
    # The config from DNS was current: no rejection, no retry.
    assert not ech_required_connections(result), result.describe()
    print(f"{browser}: accepted in {result.seconds}s")


def stale_zone(published: ECHConfigList) -> str:
    """``example.test`` publishing ``published`` for INNER_NAME at 127.0.0.1."""
    origin = "example.test"
    return "\n".join(
        [
            f"{origin}. 60 IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 60 60",
            f"{origin}. 60 IN NS ns.{origin}.",
            f"ns.{origin}. 60 IN A 127.0.0.1",
            f"{INNER_NAME}. 60 IN A 127.0.0.1",
            https_record_line(INNER_NAME, published, alpn=("http/1.1",), ttl=60),
            "",
        ]
    )


def test_ech_rejected_then_retried(
    browser: str, browser_pki: BrowserPKI, tmp_path: Path
) -> None:
    """A stale config in DNS: rejected, retry_configs, retried, accepted."""
    old = make_ech_key(tmp_path / "old.pem", config_id=1)
    new_key = tmp_path / "new.pem"
    new = make_ech_key(new_key, config_id=2)
    assert old.configs[0].config_id != new.configs[0].config_id
    scenario = Scenario(
        browser=browser,
        url=URL,
        workdir=str(tmp_path / "run"),
        ca_cert=str(browser_pki.ca_cert),
        servers=[
            ServerSpec("ech-serve", ech_serve_args(browser_pki, new_key, doh=False))
        ],
        bind=BindSpec(
            zone=stale_zone(old),
            cert=str(browser_pki.public_cert),
            key=str(browser_pki.public_key),
        ),
    )
    result = run(scenario)
    # BIND published only OLD; the server holds only NEW: an accepted ECH
    # handshake means the browser took NEW from the rejection's retry_configs.
    assert_accepted(result)
    assert_rejected_first(browser, result)
    print(f"{browser}: rejected, retried, accepted in {result.seconds}s")


def test_chromium_ech_over_http3(browser_pki: BrowserPKI, tmp_path: Path) -> None:
    """RFC 9849 over QUIC with a real browser: the HTTPS record from
    ``ech serve --doh`` lists ``alpn=h3`` and ``ech``; Chromium speaks HTTP/3
    to ``ech serve --http3`` and ECH is accepted there."""
    try:
        find_program(BROWSER_PROGRAMS["chromium"])
    except BrowserMissingError as error:
        pytest.fail(str(error), pytrace=False)
    ech_key = tmp_path / "ech.pem"
    make_ech_key(ech_key, config_id=9)
    args = ech_serve_args(browser_pki, ech_key, doh=True, http3=True)
    scenario = Scenario(
        browser="chromium",
        url=URL,
        workdir=str(tmp_path / "run"),
        ca_cert=str(browser_pki.ca_cert),
        servers=[ServerSpec("ech-serve", args)],
        doh_url=DOH_URL,
        quic=True,
    )
    result = run(scenario)
    assert_accepted(result)
    status = result.page_status()
    assert (status.get("http_version"), status.get("alpn")) == ("h3", "h3"), (
        result.describe()
    )
    quic = [
        c
        for c in result.server_events("ech-serve", "connection")
        if c["alpn"] == "h3" and c["ech_status"] == "accepted"
    ]
    assert quic, result.describe()
    print(f"chromium: ECH accepted over HTTP/3 in {result.seconds}s")
