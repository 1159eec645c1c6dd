"""Fixtures: BIND 9 and Unbound as DoH servers on 127.0.0.1, serving a test zone.

* :func:`dns_pki`: a test CA and a certificate for ``127.0.0.1``/``localhost``.
* :func:`dns_zone`: ``example.test`` with HTTPS records carrying ``ech=``
  values from :func:`ech.keys.generate_ech_key` (an X25519 list and a
  P-256 + X25519 list), ``alpn``, ``port``, hints, an AliasMode record, a
  CNAME, ``_8443._https`` (TargetName ``.`` with hints) and ``_7443._https``
  (``.`` without hints) owners, loops, an unknown mandatory key, and two
  malformed ``ech`` values. BIND 9.18 and Unbound 1.17 load them from
  presentation format as they are: neither checks that an ``ech`` value is
  an ECHConfigList, nor even its length prefix.
* :func:`bind_doh`, :func:`unbound_doh`: the servers, authoritative only
  (``recursion no``; Unbound with a ``static`` local zone), DoH over
  HTTP/2 at ``/dns-query`` on a free port, stopped when the module ends.
* :func:`kdig` (:func:`run_kdig`): Knot's ``kdig +https``, an independent
  DoH client.

Test modules load these with ``pytest_plugins`` and import the types only
under ``TYPE_CHECKING`` (an earlier import would keep pytest from rewriting
this module's asserts).

A missing program fails the tests with the Debian package to install.
"""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.rdatatype
import pytest

from ech import hpke
from ech.config import ECHConfigList
from ech.dns.publish import https_record_line
from ech.dns.resolver import DNSLookupError, DoHResolver
from ech.keys import generate_ech_key
from ech.pki import TestCA
from tests.harness.pki import TestPKI
from tests.harness.serve import free_port

NAMED = "/usr/sbin/named"
UNBOUND = "/usr/sbin/unbound"
BIND_INSTALL = "apt-get update && apt-get install -y bind9"
UNBOUND_INSTALL = "apt-get update && apt-get install -y unbound"
KDIG_INSTALL = "apt-get update && apt-get install -y knot-dnsutils"

ORIGIN = "example.test"
DOH_PATH = "/dns-query"
START_TIMEOUT = 15.0
"""Seconds a server may take to answer its first DoH query."""
IO_TIMEOUT = 10.0

BAD_INNER_ECH = base64.b64encode(b"\x00\x04\xfe\x0d\x00\x09").decode()
"""An ``ech`` value with a right length prefix whose one ECHConfig claims 9
octets of contents and has none: dnspython accepts the record, we drop it."""
BAD_LENGTH_ECH = base64.b64encode(b"\x00\x09\xfe\x0d\x00\x09").decode()
"""An ``ech`` value whose length prefix is wrong: dnspython refuses the
whole response."""


def require(program: str, install: str) -> str:
    """The program's path; fail (never skip) naming what to install."""
    found = program if Path(program).is_file() else shutil.which(program)
    if found is None:
        pytest.fail(f"{program} is not installed: run `{install}`", pytrace=False)
    return found


@dataclass(frozen=True)
class DoHFiles:
    """What a DoH server process reads: its certificate and key, the CA to trust."""

    ca_path: Path
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class DNSPKI(DoHFiles):
    """The DoH servers' certificate and the test PKI that issued it."""

    files: TestPKI
    """The builder: more leaves from the same CA."""

    @property
    def ca(self) -> TestCA:
        """The test CA."""
        return self.files.ca


@dataclass(frozen=True)
class TestZone:
    """The generated ``example.test`` zone and the configs it publishes."""

    __test__ = False  # not a pytest class

    x25519: ECHConfigList
    """A list with one X25519 config."""
    p256_x25519: ECHConfigList
    """A P-256 config then an X25519 one."""
    published: tuple[str, ...]
    """Lines written by :func:`https_record_line`, to be served back as is."""
    records: tuple[str, ...]
    """Every record but the SOA and NS, absolute owner names."""

    bad_inner_ech = BAD_INNER_ECH
    bad_length_ech = BAD_LENGTH_ECH
    soa = f"{ORIGIN}. 300 IN SOA ns.{ORIGIN}. hostmaster.{ORIGIN}. 1 3600 600 86400 60"
    ns = (f"{ORIGIN}. 300 IN NS ns.{ORIGIN}.", f"ns.{ORIGIN}. 300 IN A 127.0.0.1")

    def zone_file(self) -> str:
        """A BIND zone file."""
        return "\n".join([self.soa, *self.ns, *self.records]) + "\n"

    def unbound_local_data(self) -> str:
        """``local-zone`` and ``local-data`` lines for unbound.conf."""
        lines = [f'  local-zone: "{ORIGIN}." static']
        for record in [self.soa, *self.ns, *self.records]:
            assert "'" not in record
            lines.append(f"  local-data: '{record}'")
        return "\n".join(lines) + "\n"


def make_zone() -> TestZone:
    """Generate the zone with fresh ECH keys."""
    x25519 = ECHConfigList((generate_ech_key("public.test", config_id=1).config,))
    p256 = generate_ech_key(
        "public.test", kem_id=hpke.KEM.DHKEM_P256_HKDF_SHA256, config_id=2
    )
    p256_x25519 = ECHConfigList((p256.config, *x25519.configs))
    x, px = x25519.to_base64(), p256_x25519.to_base64()
    o = ORIGIN
    published = (
        https_record_line(o, x25519, ipv4hint=("127.0.0.1",)),
        https_record_line(
            o,
            x25519,
            port=8443,
            alpn=("h2",),
            ipv4hint=("127.0.0.1",),
            ipv6hint=("::1",),
        ),
        https_record_line(o, x25519, port=7443, alpn=("h2",)),
        https_record_line(
            f"published.{o}",
            p256_x25519,
            priority=3,
            ttl=120,
            ipv4hint=("127.0.0.3", "127.0.0.4"),
            ipv6hint=("::3",),
        ),
        https_record_line(
            f"published.{o}", x25519, port=9443, target="backend.example.test"
        ),
    )
    records = (
        f"{o}. 300 IN A 127.0.0.1",
        f"{o}. 300 IN AAAA ::1",
        *published,
        f"www.{o}. 300 IN HTTPS 1 backend.{o}. alpn=h2 port=18443"
        f" ipv4hint=127.0.0.2 ech={x}",
        f"www.{o}. 300 IN HTTPS 2 . alpn=http/1.1 ech={px}",
        f"www.{o}. 300 IN A 127.0.0.1",
        f"backend.{o}. 300 IN A 127.0.0.2",
        f"backend.{o}. 300 IN AAAA ::2",
        f"alias.{o}. 300 IN HTTPS 0 www.{o}.",
        f"cname.{o}. 300 IN CNAME www.{o}.",
        f"badech.{o}. 300 IN HTTPS 1 . alpn=h2 ech={BAD_INNER_ECH}",
        f"badech.{o}. 300 IN HTTPS 2 . alpn=h2 ech={x}",
        f"badlen.{o}. 300 IN HTTPS 1 . alpn=h2 ech={BAD_LENGTH_ECH}",
        f"mandatory.{o}. 300 IN HTTPS 1 . alpn=h3 key65000=x mandatory=key65000",
        f"mandatory.{o}. 300 IN HTTPS 2 . alpn=h2 ech={x}",
        f"mixed.{o}. 300 IN HTTPS 1 . alpn=h2 ech={x}",
        f"mixed.{o}. 300 IN HTTPS 2 . alpn=h2",
        f"noech.{o}. 300 IN HTTPS 1 . alpn=h2",
        f"loop1.{o}. 300 IN HTTPS 0 loop2.{o}.",
        f"loop2.{o}. 300 IN HTTPS 0 loop1.{o}.",
    )
    return TestZone(x25519, p256_x25519, published, records)


@pytest.fixture(scope="session")
def dns_pki(tmp_path_factory: pytest.TempPathFactory) -> DNSPKI:
    """A CA and a DoH server certificate for 127.0.0.1 and localhost."""
    files = TestPKI.create(tmp_path_factory.mktemp("dns-pki"), "ech DoH test CA")
    doh = files.leaf("doh", "127.0.0.1", "localhost")
    # named may drop privileges; let it read the key in its private directory.
    doh.key_path.chmod(0o644)
    return DNSPKI(files.ca_path, doh.cert_path, doh.key_path, files)


@pytest.fixture(scope="session")
def dns_zone() -> TestZone:
    """The generated zone (same keys for every server)."""
    return make_zone()


# -- running servers ------------------------------------------------------------------


@dataclass
class DoHServer:
    """A DNS server process answering DoH on 127.0.0.1."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    ca_path: Path
    log_path: Path

    @property
    def url(self) -> str:
        """The DoH URL (RFC 8484 §3)."""
        return f"https://127.0.0.1:{self.port}{DOH_PATH}"

    def log(self) -> str:
        """What the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def resolver(self, **kwargs: object) -> DoHResolver:
        """A :class:`DoHResolver` for this server, trusting its CA."""
        return DoHResolver(self.url, cafile=str(self.ca_path), **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Terminate, then kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start(
    name: str, argv: list[str], port: int, pki: DoHFiles, directory: Path
) -> DoHServer:
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = DoHServer(name, process, port, pki.ca_path, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    try:
        with server.resolver(timeout=2, http_version="h2") as probe:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    probe.query(f"{ORIGIN}.", dns.rdatatype.SOA)
                    return server
                except DNSLookupError as error:
                    last = error
                    time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    server.stop()
    raise AssertionError(
        f"{name} did not serve DoH on port {port} within {START_TIMEOUT}s "
        f"(exit status {process.returncode}, last error {last}):\n{server.log()}"
    )


def start_bind(pki: DoHFiles, zone_text: str, directory: Path) -> DoHServer:
    """BIND 9 (named -g), authoritative for ``example.test``, DoH on a free port.

    ``listen-on port P tls T http H`` is BIND 9.18's DoH listener; the plain
    DNS listeners are disabled so nothing binds port 53.
    """
    named = require(NAMED, BIND_INSTALL)
    port = free_port()
    (directory / "example.test.zone").write_text(zone_text)
    conf = directory / "named.conf"
    conf.write_text(
        f"""
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    managed-keys-directory "{directory}";
    listen-on {{ none; }};
    listen-on-v6 {{ none; }};
    listen-on port {port} tls doh-tls http doh-http {{ 127.0.0.1; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
}};
tls doh-tls {{
    key-file "{pki.key_path}";
    cert-file "{pki.cert_path}";
}};
http doh-http {{
    endpoints {{ "{DOH_PATH}"; }};
}};
controls {{ }};
zone "{ORIGIN}" {{
    type primary;
    file "{directory}/example.test.zone";
}};
"""
    )
    return _start(
        "named", [named, "-g", "-n", "1", "-c", str(conf)], port, pki, directory
    )


def start_unbound(pki: DoHFiles, local_data: str, directory: Path) -> DoHServer:
    """Unbound in the foreground with a static local zone, DoH on a free port."""
    unbound = require(UNBOUND, UNBOUND_INSTALL)
    port = free_port()
    conf = directory / "unbound.conf"
    conf.write_text(
        f"""server:
  interface: 127.0.0.1@{port}
  https-port: {port}
  http-endpoint: "{DOH_PATH}"
  tls-service-key: "{pki.key_path}"
  tls-service-pem: "{pki.cert_path}"
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{directory}"
  pidfile: "{directory}/unbound.pid"
  use-syslog: no
  verbosity: 1
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
{local_data}
remote-control:
  control-enable: no
"""
    )
    return _start("unbound", [unbound, "-d", "-c", str(conf)], port, pki, directory)


@pytest.fixture(scope="module")
def bind_doh(
    dns_pki: DNSPKI, dns_zone: TestZone, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DoHServer]:
    """BIND 9 serving :func:`dns_zone` over DoH; stopped after the module."""
    server = start_bind(dns_pki, dns_zone.zone_file(), tmp_path_factory.mktemp("bind"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def unbound_doh(
    dns_pki: DNSPKI, dns_zone: TestZone, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DoHServer]:
    """Unbound serving :func:`dns_zone` over DoH; stopped after the module."""
    server = start_unbound(
        dns_pki, dns_zone.unbound_local_data(), tmp_path_factory.mktemp("unbound")
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["bind", "unbound"])
def doh_server(request: pytest.FixtureRequest) -> DoHServer:
    """Each of BIND and Unbound in turn."""
    server: DoHServer = request.getfixturevalue(f"{request.param}_doh")
    return server


# -- kdig ---------------------------------------------------------------------------


Kdig = Callable[..., list[str]]
"""The type of :func:`run_kdig`."""


@pytest.fixture(scope="session")
def kdig() -> Kdig:
    """:func:`run_kdig`, failing at once when kdig is missing."""
    kdig_path()
    return run_kdig


@functools.cache
def kdig_path() -> str:
    """Where kdig is; fails the test when knot-dnsutils is missing."""
    return require("kdig", KDIG_INSTALL)


def run_kdig(
    port: int, ca_path: Path, name: str, rdtype: str = "HTTPS", *, get: bool = False
) -> list[str]:
    """``kdig @127.0.0.1 -p PORT +https +tls-ca=CA NAME TYPE +short`` lines."""
    argv = [
        kdig_path(),
        "@127.0.0.1",
        "-p",
        str(port),
        f"+https={DOH_PATH}",
        f"+tls-ca={ca_path}",
        "+short",
        "+timeout=5",
        name,
        rdtype,
    ]
    if get:
        argv.insert(5, "+https-get")
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=IO_TIMEOUT, check=False
    )
    if result.returncode != 0 or "error" in result.stderr.lower():
        raise AssertionError(f"kdig failed ({result.returncode}):\n{result}")
    return [line for line in result.stdout.splitlines() if line.strip()]
