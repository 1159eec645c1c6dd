"""ECH bootstrapped from DNS, end to end (issue 4): ``ech keygen`` →
``ech dns-record`` → BIND 9 over DoH → ``ech get``/curl → ``ech serve``.

One ``ech serve --doh /dns-query`` subprocess serves the module. Its port is
not 443, so every record lives at ``_PORT._https.NAME`` (RFC 9460 §9.1).
BIND 9 (started with the helpers of :mod:`tests.integration.dns_servers`)
serves ``example.test`` with:

* :data:`INNER_NAME`: the line ``ech dns-record --ipv4hint 127.0.0.1``
  printed for the server's X25519 key (TargetName ``.``, the form curl
  applies at ``_PORT._https``), plus an A record;
* :data:`PLAIN_NAME`: an HTTPS record without ``ech`` (clients GREASE);
* :data:`DOT_NAME`: :func:`https_record_line`'s default for the port, with
  ``ipv4hint``;
* :data:`NOHINT_NAME`: the same without hints, so clients take the origin's
  A record;
* :data:`STALE_NAME`: a record whose ``ech`` is for a key the server does
  not hold, at the port of a :class:`HelloRecorder` in front of the server,
  so the test sees every ClientHello sent in clear.

Clients: ``ech get``/``ech connect``/``ech dig`` (subprocesses), curl_cffi
(``CURLOPT_DOH_URL``), and kdig against ``ech serve``'s own DoH responder.
A missing peer fails the tests naming the package to install.
"""

from __future__ import annotations

import base64
import dataclasses
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.rdata
import dns.rdtypes.svcbbase
import pytest

from ech.config import ECHConfig, ECHConfigList
from ech.dns.publish import https_record_line
from tests.harness.http import status_json
from tests.harness.serve import (
    ServeProcess,
    ech_keygen,
    find_ech_command,
    free_port,
    run_ech,
    serve_args,
    serve_process,
)
from tests.integration.dns_e2e_helpers import (
    HelloRecorder,
    curl_doh_get,
    json_output,
)
from tests.integration.peers import PeerMissingError, require_curl_cffi

if TYPE_CHECKING:
    from tests.integration.dns_servers import DNSPKI, DoHServer, Kdig

# dns_servers is loaded as a plugin (so pytest rewrites its asserts) and its
# functions are imported inside the fixtures, after that.
pytest_plugins = ("tests.integration.dns_servers",)
pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ORIGIN = "example.test"
"""The zone BIND serves (``dns_servers.start_bind`` probes its SOA)."""
PUBLIC_NAME = f"public.{ORIGIN}"
INNER_NAME = f"secret.{ORIGIN}"
PLAIN_NAME = f"plain.{ORIGIN}"
DOT_NAME = f"dot.{ORIGIN}"
"""Published with TargetName ``.`` and ``ipv4hint``, the form curl applies."""
NOHINT_NAME = f"nohint.{ORIGIN}"
"""Published with TargetName ``.`` and no hints: the origin's A is used."""
STALE_NAME = f"stale.{ORIGIN}"
UNUSABLE_NAME = f"unusable.{ORIGIN}"
"""Its only record's ``ech`` holds a config under a KEM nobody implements."""
DOH_PATH = "/dns-query"
ECH_COMMAND = find_ech_command()

ECH = dns.rdtypes.svcbbase.ParamKey.ECH
PORT = dns.rdtypes.svcbbase.ParamKey.PORT
ALPN = dns.rdtypes.svcbbase.ParamKey.ALPN
IPV4HINT = dns.rdtypes.svcbbase.ParamKey.IPV4HINT
IPV6HINT = dns.rdtypes.svcbbase.ParamKey.IPV6HINT


@dataclass(frozen=True)
class Files:
    """Certificates and ECH keys (all from ``dns_pki``'s CA)."""

    directory: Path
    ca_path: Path
    certificates: list[tuple[Path, Path]]
    """Public name + 127.0.0.1 (first: DoH clients send no SNI), inner names."""
    x25519_key: Path
    x25519: ECHConfigList
    p256_key: Path
    stale: ECHConfigList


@dataclass(frozen=True)
class Site:
    """The running ``ech serve``, the recorder in front of it, BIND."""

    files: Files
    server: ServeProcess
    recorder: HelloRecorder
    bind: DoHServer
    record_line: str
    dns_record: subprocess.CompletedProcess[str]
    """The ``ech dns-record`` run that printed :attr:`record_line`."""

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ca(self) -> str:
        return str(self.files.ca_path)

    @property
    def doh_url(self) -> str:
        """``ech serve --doh``'s own DoH URL (its certificate names 127.0.0.1)."""
        return f"https://127.0.0.1:{self.port}{DOH_PATH}"


@pytest.fixture(scope="module")
def files(dns_pki: DNSPKI, tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("dns-e2e")
    leaves = [
        dns_pki.files.leaf("e2e-public", PUBLIC_NAME, "127.0.0.1"),
        dns_pki.files.leaf("e2e-inner", INNER_NAME, PLAIN_NAME, DOT_NAME, NOHINT_NAME),
    ]
    certificates = [(leaf.cert_path, leaf.key_path) for leaf in leaves]
    ech_keygen(PUBLIC_NAME, directory / "ech-p256.pem", kem="p256")
    return Files(
        directory=directory,
        ca_path=dns_pki.ca_path,
        certificates=certificates,
        x25519_key=directory / "ech-x25519.pem",
        x25519=ech_keygen(PUBLIC_NAME, directory / "ech-x25519.pem"),
        p256_key=directory / "ech-p256.pem",
        stale=ech_keygen(PUBLIC_NAME, directory / "ech-stale.pem"),
    )


def unknown_kem(configs: ECHConfigList) -> ECHConfigList:
    """``configs`` under KEM 0x9999, which no client implements."""
    return ECHConfigList(
        tuple(
            ECHConfig.from_contents(dataclasses.replace(c.contents, kem_id=0x9999))
            for c in configs.configs
            if c.contents is not None
        )
    )


def zone_text(records: list[str]) -> str:
    """A zone file for :data:`ORIGIN` holding ``records``."""
    head = [
        f"{ORIGIN}. 300 IN SOA ns.{ORIGIN}. hostmaster.{ORIGIN}. 1 3600 600 86400 60",
        f"{ORIGIN}. 300 IN NS ns.{ORIGIN}.",
        f"ns.{ORIGIN}. 300 IN A 127.0.0.1",
    ]
    return "\n".join([*head, *records]) + "\n"


@pytest.fixture(scope="module")
def site(files: Files, dns_pki: DNSPKI) -> Iterator[Site]:
    from tests.integration.dns_servers import start_bind

    args = serve_args(files.certificates, [files.x25519_key], doh_path=DOH_PATH)
    with (
        serve_process(args, files.directory / "serve.log") as server,
        HelloRecorder(server.port) as recorder,
    ):
        made = run_ech(
            ECH_COMMAND,
            "dns-record", INNER_NAME, "--ech-key", files.x25519_key,
            "--port", str(server.port), "--ipv4hint", "127.0.0.1",
        )  # fmt: skip
        assert made.returncode == 0, made
        line = made.stdout.strip()
        port = server.port
        records = [
            line,
            f"{INNER_NAME}. 300 IN A 127.0.0.1",
            f"_{port}._https.{PLAIN_NAME}. 300 IN HTTPS 1 {PLAIN_NAME}. "
            f"alpn=http/1.1 port={port}",
            f"{PLAIN_NAME}. 300 IN A 127.0.0.1",
            https_record_line(
                DOT_NAME, files.x25519, port=port, ipv4hint=("127.0.0.1",)
            ),
            f"{DOT_NAME}. 300 IN A 127.0.0.1",
            https_record_line(NOHINT_NAME, files.x25519, port=port),
            f"{NOHINT_NAME}. 300 IN A 127.0.0.1",
            https_record_line(STALE_NAME, files.stale, port=recorder.port),
            f"{STALE_NAME}. 300 IN A 127.0.0.1",
            https_record_line(
                UNUSABLE_NAME,
                unknown_kem(files.x25519),
                port=recorder.port,
                ipv4hint=("127.0.0.1",),
            ),
        ]
        bind_directory = files.directory / "bind"
        bind_directory.mkdir()
        bind = start_bind(dns_pki, zone_text(records), bind_directory)
        try:
            yield Site(files, server, recorder, bind, line, made)
        finally:
            bind.stop()
        log = server.log()
    assert "Traceback" not in log, f"ech serve logged an exception:\n{log}"


@pytest.fixture(scope="session")
def curl_cffi_version() -> str:
    """Fail (never skip) when curl_cffi is missing."""
    try:
        return require_curl_cffi()
    except PeerMissingError as error:
        missing = str(error)
    pytest.fail(missing, pytrace=False)


def check_accepted(fields: dict[str, Any], name: str = INNER_NAME) -> None:
    assert fields["ech_status"] == "accepted", fields
    assert fields["server_name"] == name, fields
    assert fields["outer_server_name"] == PUBLIC_NAME, fields


# -- 1. ech dns-record → BIND → ech get ---------------------------------------------


def hint_warning(port: int) -> str:
    """What ``ech dns-record --port PORT`` says when given no hint."""
    return (
        "warning: for a port other than 443 give --ipv4hint/--ipv6hint: the"
        f" record's owner _{port}._https.{INNER_NAME} has no addresses\n"
    )


def test_dns_record_line_and_warnings(site: Site) -> None:
    assert site.dns_record.stderr == "", "an X25519 key with a hint needs no warning"
    owner, ttl, klass, rrtype, rdata = site.record_line.split(maxsplit=4)
    assert (owner, ttl, klass, rrtype) == (
        f"_{site.port}._https.{INNER_NAME}.",
        "300",
        "IN",
        "HTTPS",
    )
    parsed: Any = dns.rdata.from_text("IN", "HTTPS", rdata)
    assert parsed.target.to_text() == "."  # curl applies only TargetName "."
    assert parsed.params[ECH].ech == site.files.x25519.encode()
    assert parsed.params[PORT].port == site.port
    assert [str(a) for a in parsed.params[IPV4HINT].addresses] == ["127.0.0.1"]
    assert IPV6HINT not in parsed.params

    # Without a hint: the same record, and a warning that it has no address.
    bare = run_ech(
        ECH_COMMAND,
        "dns-record", INNER_NAME, "--ech-key", site.files.x25519_key,
        "--port", str(site.port),
    )  # fmt: skip
    assert bare.returncode == 0, bare
    assert bare.stderr == hint_warning(site.port), bare
    assert bare.stdout.startswith(
        f"_{site.port}._https.{INNER_NAME}. 300 IN HTTPS 1 . "
    )
    assert "hint" not in bare.stdout, bare

    p256 = run_ech(
        ECH_COMMAND,
        "dns-record", INNER_NAME, "--ech-key", site.files.p256_key,
        "--port", str(site.port), "--ipv4hint", "127.0.0.1",
    )  # fmt: skip
    assert p256.returncode == 0, p256
    assert "warning:" in p256.stderr, p256
    assert "X25519" in p256.stderr, p256
    assert "--ipv4hint" not in p256.stderr, p256
    assert p256.stdout.startswith(
        f"_{site.port}._https.{INNER_NAME}. 300 IN HTTPS 1 . "
    )


def test_get_discovers_ech_through_bind(site: Site) -> None:
    since = len(site.server.log())
    result = run_ech(
        ECH_COMMAND,
        "get", f"https://{INNER_NAME}:{site.port}/",
        "--doh", site.bind.url, "--ca", site.ca, "--json",
    )  # fmt: skip
    outcome = json_output(result)
    assert result.returncode == 0, result
    check_accepted(outcome)
    assert outcome["ech_from_dns"] is True, outcome
    assert outcome["retried"] is False, outcome
    check_accepted(status_json(outcome["body"].encode()))  # what the server saw
    handshakes = site.server.wait_handshakes(since, 1)
    assert [h["ech_status"] for h in handshakes] == ["accepted"]


# -- 2. curl_cffi with CURLOPT_DOH_URL → BIND -----------------------------------------


@pytest.mark.parametrize("ech", [b"true", b"hard"])
def test_curl_discovers_ech_through_bind(
    site: Site, curl_cffi_version: str, ech: bytes
) -> None:
    """curl reads the record ``ech dns-record`` printed for a non-443 port.

    curl 8.23 applies an HTTPS record at ``_PORT._https`` only if its
    TargetName is ``.`` (Curl_httpsrr_applicable), which ``ech dns-record``
    now writes.
    """
    outcome = curl_doh_get(
        f"https://{INNER_NAME}:{site.port}/",
        doh_url=site.bind.url,
        cafile=site.files.ca_path,
        ech=ech,
    )
    check_accepted(outcome.page())


@pytest.mark.parametrize("ech", [b"true", b"hard"])
def test_curl_with_dot_target_and_hint(
    site: Site, curl_cffi_version: str, ech: bytes
) -> None:
    """``_P._https.NAME HTTPS 1 . port=P ipv4hint=... ech=...``: curl takes it."""
    outcome = curl_doh_get(
        f"https://{DOT_NAME}:{site.port}/",
        doh_url=site.bind.url,
        cafile=site.files.ca_path,
        ech=ech,
    )
    check_accepted(outcome.page(), DOT_NAME)


@pytest.mark.parametrize("ech", [b"true", b"hard"])
def test_curl_with_dot_target_without_hint(
    site: Site, curl_cffi_version: str, ech: bytes
) -> None:
    """No hints: curl connects to the origin's A record and still applies ``ech``."""
    outcome = curl_doh_get(
        f"https://{NOHINT_NAME}:{site.port}/",
        doh_url=site.bind.url,
        cafile=site.files.ca_path,
        ech=ech,
    )
    check_accepted(outcome.page(), NOHINT_NAME)


def test_get_with_dot_target_and_hint(site: Site) -> None:
    """The same record works for us: the effective target has no A, the hint does."""
    result = run_ech(
        ECH_COMMAND,
        "get", f"https://{DOT_NAME}:{site.port}/",
        "--doh", site.bind.url, "--ca", site.ca, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result
    check_accepted(json_output(result), DOT_NAME)


def test_dig_dot_target_is_the_prefixed_owner(site: Site) -> None:
    """Our resolver reads ``.`` at ``_PORT._https.NAME`` as that owner."""
    for name, hints in ((DOT_NAME, ["127.0.0.1"]), (NOHINT_NAME, [])):
        result = run_ech(
            ECH_COMMAND,
            "dig", name, "--port", str(site.port),
            "--doh", site.bind.url, "--ca", site.ca, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result
        (endpoint,) = json_output(result)["endpoints"]
        assert endpoint["target"] == f"_{site.port}._https.{name}", endpoint
        assert endpoint["port"] == site.port, endpoint
        assert endpoint["ipv4hint"] == hints, endpoint
        assert endpoint["ipv6hint"] == [], endpoint


def test_get_with_dot_target_without_hint_uses_the_origin(site: Site) -> None:
    """No A at ``_PORT._https.NAME``, no hints: we connect to NAME's A record."""
    result = run_ech(
        ECH_COMMAND,
        "get", f"https://{NOHINT_NAME}:{site.port}/",
        "--doh", site.bind.url, "--ca", site.ca, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result
    outcome = json_output(result)
    check_accepted(outcome, NOHINT_NAME)
    assert outcome["ech_from_dns"] is True, outcome


# -- 3. ech dig and kdig against ech serve --doh --------------------------------------


def test_dig_agrees_with_kdig(site: Site, kdig: Kdig) -> None:
    result = run_ech(
        ECH_COMMAND,
        "dig", INNER_NAME, "--port", str(site.port),
        "--doh", site.doh_url, "--ca", site.ca, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result
    dig = json_output(result)
    assert dig["query_name"] == f"_{site.port}._https.{INNER_NAME}", dig
    ours = {
        (e["target"].rstrip("."), e["port"], tuple(e["alpn"]), e["ech"])
        for e in dig["endpoints"]
    }

    lines = kdig(site.port, site.files.ca_path, f"_{site.port}._https.{INNER_NAME}")
    theirs: set[tuple[str, int, tuple[str, ...], str]] = set()
    for line in lines:
        rd: Any = dns.rdata.from_text("IN", "HTTPS", line)
        theirs.add(
            (
                rd.target.to_text(omit_final_dot=True),
                rd.params[PORT].port,
                tuple(a.decode() for a in rd.params[ALPN].ids),
                base64.b64encode(rd.params[ECH].ech).decode(),
            )
        )
    # kdig prints TargetName ".", we the owner it stands for (RFC 9460 §2.5.2).
    owner = f"_{site.port}._https.{INNER_NAME}"
    record = (site.port, ("h2", "http/1.1"), site.files.x25519.to_base64())
    assert theirs == {(".", *record)}, (dig, lines)
    assert ours == {(owner, *record)}, (dig, lines)
    (endpoint,) = dig["endpoints"]
    assert endpoint["ipv4hint"] == ["127.0.0.1"], endpoint  # ech serve's address
    assert all("ipv4hint=127.0.0.1" in line for line in lines), lines
    assert kdig(site.port, site.files.ca_path, INNER_NAME, "A") == ["127.0.0.1"]
    assert kdig(site.port, site.files.ca_path, owner, "A") == []


# -- 4. key rotation seen through DNS ------------------------------------------------


def test_rotation_seen_through_dns(files: Files) -> None:
    """A restart with a new key: the DoH answer and the handshake follow it."""
    port = free_port()
    old_key = files.directory / "rotation-old.pem"
    new_key = files.directory / "rotation-new.pem"
    old = ech_keygen(PUBLIC_NAME, old_key)
    new = ech_keygen(PUBLIC_NAME, new_key)
    url = f"https://127.0.0.1:{port}{DOH_PATH}"
    ca = str(files.ca_path)

    def published() -> str:
        result = run_ech(
            ECH_COMMAND,
            "dig",
            INNER_NAME,
            "--port",
            str(port),
            "--doh",
            url,
            "--ca",
            ca,
            "--json",
        )
        assert result.returncode == 0, result
        (endpoint,) = json_output(result)["endpoints"]
        ech: str = endpoint["ech"]
        return ech

    def connect(*extra: str) -> tuple[int, dict[str, Any]]:
        result = run_ech(
            ECH_COMMAND,
            "connect", f"127.0.0.1:{port}", "--sni", INNER_NAME,
            "--ca", ca, "--json", *extra,
        )  # fmt: skip
        return result.returncode, json_output(result)

    for key, configs in ((old_key, old), (new_key, new)):
        with serve_process(
            serve_args(files.certificates, [key], doh_path=DOH_PATH),
            files.directory / f"rotation-{key.stem}.log",
            port=port,
        ):
            assert published() == configs.to_base64()
            status, outcome = connect("--doh", url)
            assert status == 0, outcome
            check_accepted(outcome)
            assert outcome["retried"] is False, outcome
    # A client that kept the old config (no DNS) gets the new one as retry configs.
    with serve_process(
        serve_args(files.certificates, [new_key]),
        files.directory / "rotation-stale.log",
        port=port,
    ):
        status, outcome = connect("--ech-config-list", old.to_base64())
    assert status == 0, outcome
    check_accepted(outcome)
    assert outcome["retried"] is True, outcome
    assert outcome["retry_configs"] == new.to_base64(), outcome


# -- 5. GREASE without ech; no cleartext fallback with ech ----------------------------


def test_grease_when_record_has_no_ech(site: Site) -> None:
    result = run_ech(
        ECH_COMMAND,
        "get", f"https://{PLAIN_NAME}:{site.port}/",
        "--doh", site.bind.url, "--ca", site.ca, "--json",
    )  # fmt: skip
    outcome = json_output(result)
    assert result.returncode == 0, result
    assert outcome["ech_status"] == "grease", outcome
    assert outcome["ech_from_dns"] is False, outcome
    assert outcome["server_name"] == PLAIN_NAME, outcome
    seen = status_json(outcome["body"].encode())
    # A server cannot tell GREASE from a config it lacks (RFC 9849 §10.10.4).
    assert seen["ech_status"] == "rejected", seen
    assert seen["outer_server_name"] == PLAIN_NAME, seen


@pytest.mark.requirement("ECH-68")
def test_no_cleartext_fallback_when_record_promises_ech(site: Site) -> None:
    """A rejected config from DNS, no retry: exit 1, and never a hello without ECH."""
    since = len(site.server.log())
    before = len(site.recorder.snapshot())
    result = run_ech(
        ECH_COMMAND,
        "connect", f"127.0.0.1:{site.recorder.port}", "--sni", STALE_NAME,
        "--doh", site.bind.url, "--ca", site.ca, "--no-retry", "--json",
    )  # fmt: skip
    outcome = json_output(result)
    assert result.returncode == 1, result
    assert outcome["ech_status"] == "rejected", outcome
    assert outcome["outer_server_name"] == PUBLIC_NAME, outcome
    assert outcome["retry_configs"] == site.files.x25519.to_base64(), outcome

    hellos = site.recorder.snapshot()[before:]
    assert len(hellos) == 1, hellos
    assert all(h.offers_ech for h in hellos), hellos
    assert {h.server_name for h in hellos} == {PUBLIC_NAME}, hellos
    # The server completed no handshake at all, least of all one without ECH.
    statuses = [h["ech_status"] for h in site.server.handshakes(since)]
    assert "not_offered" not in statuses, statuses
    assert statuses == [], statuses


@pytest.mark.requirement("ECH-105")
@pytest.mark.parametrize("strict", [False, True], ids=["default", "require-ech"])
def test_no_usable_config_in_a_reliant_record_sends_nothing(
    site: Site, strict: bool
) -> None:
    """Every record has ech, none usable: exit 1, and not one ClientHello.

    RFC 9848 §5.1: with ``ech`` on every record the client is SVCB-reliant;
    it used to send GREASE with the real name in the outer SNI.
    """
    before = len(site.recorder.snapshot())
    result = run_ech(
        ECH_COMMAND,
        "get", f"https://{UNUSABLE_NAME}:{site.recorder.port}/",
        "--doh", site.bind.url, "--ca", site.ca, "--json",
        *(["--require-ech"] if strict else []),
    )  # fmt: skip
    outcome = json_output(result)
    assert result.returncode == 1, result
    assert outcome["ech_reason"] == "no_supported_config", outcome
    assert outcome["ech_status"] == "not_offered", outcome
    assert "KEM 0x9999" in str(outcome["ech_detail"]), outcome
    assert "unsupported KEM" in str(outcome["ech_detail"]), outcome
    assert site.recorder.snapshot()[before:] == [], "a ClientHello was sent"
