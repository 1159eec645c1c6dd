"""Run Chromium or Firefox ESR as an ECH client inside a private network namespace.

The browsers want ``https://NAME/`` on port 443 and discover ECH configs
from HTTPS records over DoH, in secure ("strict") mode, so nothing leaks to
the system resolver. Each run therefore happens in a namespace of its own:

* the test process (outside) writes a :class:`Scenario` to JSON and calls
  :func:`run_scenario`, which runs ``unshare --net --pid --fork --kill-child
  --mount-proc python -m tests.integration.browsers SCENARIO.json`` in a new
  process group, under a hard timeout;
* :func:`main` (inside, PID 1 of a new PID namespace, only ``lo``) brings up
  loopback, starts the ``ech serve`` processes
  (:func:`tests.harness.serve.serve_process`) and, if asked, BIND as the DoH server
  (:func:`tests.integration.dns_servers.start_bind`), sets up a fresh browser
  profile trusting the test CA, loads the URL, and writes a :class:`Result`.

When PID 1 of the namespace exits, the kernel kills everything left in it;
``--kill-child`` does the same if ``unshare`` itself is killed. So a hung
browser or server cannot outlive the test.

Page text: Chromium's ``--dump-dom`` prints the DOM (the JSON status page
sits in a ``<pre>``); Firefox is driven over Marionette (its built-in
remote protocol, :class:`Marionette`: length-prefixed JSON on a TCP port)
to navigate and read ``document.body.innerText``.

A missing program raises :class:`BrowserMissingError` naming the Debian
package; the tests turn that into a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.harness.pki import write_nss_db
from tests.harness.serve import ServeProcess, serve_process

if TYPE_CHECKING:
    from tests.integration.dns_servers import DoHServer

REPO = Path(__file__).resolve().parents[2]

CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
CERTUTIL = "certutil"
UNSHARE = "unshare"
IP = "ip"

DEBIAN_PACKAGES: dict[str, str] = {
    CHROMIUM: "chromium",
    FIREFOX: "firefox-esr",
    CERTUTIL: "libnss3-tools",
    UNSHARE: "util-linux",
    IP: "iproute2",
    "/usr/sbin/named": "bind9",
}
"""The Debian package providing each program the browser tests run."""

BROWSER_PROGRAMS: dict[str, str] = {"chromium": CHROMIUM, "firefox": FIREFOX}

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",  # we are root
    "--disable-gpu",
    "--disable-quic",  # HTTPS records also advertise h3 elsewhere; stay on TCP
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)
"""Headless Chromium as root, quiet on the network."""

FIREFOX_PREFS: dict[str, bool | int | str] = {
    # DoH only ("strict"): mode 3 never falls back to the system resolver.
    # With network.trr.uri (set per run) this is all Firefox 153 needs; the
    # next three are its defaults or harmless here (checked one by one),
    # kept so an older or differently built Firefox behaves the same.
    "network.trr.mode": 3,
    # Accept TRR answers with private addresses (the zone says 127.0.0.1).
    "network.trr.allow-rfc1918": True,
    # No confirmation query (NS example.com): our servers would refuse it.
    "network.trr.confirmationNS": "skip",
    "network.dns.echconfig.enabled": True,
    "network.dns.http3_echconfig.enabled": False,
    "network.dns.use_https_rr_as_altsvc": True,
    "network.http.http3.enable": False,
    # Show the JSON page as plain text, not in the JSON viewer.
    "devtools.jsonview.enabled": False,
    # Quiet: nothing to reach in the namespace, so nothing to wait for.
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "extensions.update.enabled": False,
}
"""``user.js`` of the Firefox profile, besides the DoH URL and Marionette port."""

FIREFOX_MOZ_LOG = "nsHttp:4,nsSocketTransport:4"
"""Firefox's own log modules kept (``MOZ_LOG``): its ECH decisions."""
_ECH_WORD = re.compile(r"\bECH\b|echconfig|SSL_ERROR_ECH", re.IGNORECASE)

MARIONETTE_PORT = 2828
BROWSER_TIMEOUT = 60.0
"""Hard limit on one browser run (start, load, read, quit)."""
RUN_TIMEOUT = 120.0
"""Hard limit on one whole namespace run (servers, browser, teardown)."""

_LOG_EVENT = re.compile(r" INFO (handshake|connection) (\{.*\})$", re.MULTILINE)
_PRE = re.compile(r"<pre[^>]*>(.*?)</pre>", re.DOTALL)


class BrowserMissingError(RuntimeError):
    """A program the browser tests need is missing; the message says how to fix."""


def install_command(*packages: str) -> str:
    """The apt-get command installing ``packages``."""
    return f"apt-get update && apt-get install -y {' '.join(packages)}"


def find_program(program: str) -> str:
    """The program's path, or :class:`BrowserMissingError` naming its package."""
    found = program if Path(program).is_file() else shutil.which(program)
    if found is None:
        package = DEBIAN_PACKAGES.get(program, program)
        raise BrowserMissingError(
            f"{program} is not installed: run `{install_command(package)}`"
        )
    return found


# -- what to run, what came back ---------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """An ``ech serve`` to start before the browser, on 127.0.0.1:``port``."""

    name: str
    args: list[str]
    """The command line after ``ech serve --listen 127.0.0.1:PORT``."""
    port: int = 443


@dataclass(frozen=True)
class BindSpec:
    """BIND 9 as the DoH server, authoritative for ``example.test``."""

    zone: str
    """The zone file text."""
    cert: str
    key: str
    """Certificate (for ``127.0.0.1``) and key of its DoH listener."""


@dataclass(frozen=True)
class Scenario:
    """One browser run, as the namespace runner reads it (JSON)."""

    browser: str
    """``chromium`` or ``firefox``."""
    url: str
    workdir: str
    ca_cert: str
    """The test CA the browser trusts (PEM file)."""
    servers: list[ServerSpec]
    doh_url: str | None = None
    """The DoH template, when one of ``servers`` answers DoH."""
    bind: BindSpec | None = None
    """BIND as the DoH server instead (its URL is known once it runs)."""
    browser_timeout: float = BROWSER_TIMEOUT
    quic: bool = False
    """Let the browser use HTTP/3 (Chromium: QUIC forced on for the URL's
    origin, which a private CA needs; see shared/interop.md)."""

    def to_json(self) -> str:
        """The scenario as JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        """Parse :meth:`to_json` output."""
        data = json.loads(text)
        data["servers"] = [ServerSpec(**s) for s in data["servers"]]
        if data.get("bind") is not None:
            data["bind"] = BindSpec(**data["bind"])
        return cls(**data)


@dataclass
class Result:
    """What one browser run produced."""

    page: str | None = None
    """The page's text (Firefox) or DOM (Chromium); ``None`` if none came."""
    error: str | None = None
    """Why the run or the page load failed, if it did."""
    doh_url: str | None = None
    seconds: float = 0.0
    """Time the browser took, from start to exit."""
    logs: dict[str, str] = field(default_factory=dict)
    """Server logs and the browser's stderr, by name."""

    def to_json(self) -> str:
        """The result as JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Result:
        """Parse :meth:`to_json` output."""
        return cls(**json.loads(text))

    def describe(self) -> str:
        """Everything, for assertion messages."""
        parts = [f"error: {self.error}", f"doh_url: {self.doh_url}"]
        parts.append(f"page:\n{self.page}")
        for name, text in self.logs.items():
            parts.append(f"--- {name} (last 6000 characters) ---\n{text[-6000:]}")
        return "\n".join(parts)

    def page_status(self) -> dict[str, Any]:
        """The status page's JSON object, or AssertionError with everything."""
        text = self.page or ""
        match = _PRE.search(text)  # Chromium's DOM wraps the JSON in <pre>
        if match is not None:
            text = html.unescape(match.group(1))
        try:
            status = json.loads(text)
        except ValueError:
            raise AssertionError(
                f"the browser got no JSON status page:\n{self.describe()}"
            ) from None
        if not isinstance(status, dict):
            raise AssertionError(f"status page is not an object:\n{self.describe()}")
        return status

    def server_events(self, server: str, kind: str) -> list[dict[str, Any]]:
        """The ``KIND {json}`` lines ``ech serve`` logged, parsed, in order.

        ``connection``: one per connection when it ends, failed handshakes
        included (``outcome``, ``alert_received``, ...).
        """
        text = self.logs.get(server, "")
        return [json.loads(m[1]) for m in _LOG_EVENT.findall(text) if m[0] == kind]

    def handshakes(self, server: str) -> list[dict[str, Any]]:
        """The connection lines ``ech serve`` logged for completed handshakes."""
        lines = self.server_events(server, "connection")
        return [line for line in lines if line["handshake_ms"] is not None]


# -- outside: run a scenario in a namespace ----------------------------------------


def require_programs(scenario: Scenario) -> None:
    """Raise :class:`BrowserMissingError` unless everything the run needs exists."""
    find_program(BROWSER_PROGRAMS[scenario.browser])
    for program in (CERTUTIL, UNSHARE, IP):
        find_program(program)
    if scenario.bind is not None:
        find_program("/usr/sbin/named")


def run_scenario(scenario: Scenario, timeout: float = RUN_TIMEOUT) -> Result:
    """Run ``scenario`` in a fresh network and PID namespace; its :class:`Result`.

    Raises:
        BrowserMissingError: A program is not installed.
        AssertionError: The runner timed out or wrote no result.
    """
    require_programs(scenario)
    workdir = Path(scenario.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_path = workdir / "scenario.json"
    scenario_path.write_text(scenario.to_json())
    result_path = workdir / "result.json"
    result_path.unlink(missing_ok=True)
    runner_log = workdir / "runner.log"
    # Not root: a user namespace maps us to root inside (port 443, `ip`).
    user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    argv = [
        find_program(UNSHARE),
        *user,
        *("--net", "--pid", "--fork", "--kill-child", "--mount-proc"),
        *(sys.executable, "-m", "tests.integration.browsers", str(scenario_path)),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
    )
    with runner_log.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise AssertionError(
                f"browser run timed out after {timeout}s:\n"
                f"{runner_log.read_text(errors='replace')[-6000:]}"
            ) from None
        finally:
            _kill_group(process)
    if not result_path.exists():
        raise AssertionError(
            f"the namespace runner exited with status {process.returncode} and no "
            f"result:\n{runner_log.read_text(errors='replace')[-6000:]}"
        )
    result = Result.from_json(result_path.read_text())
    result.logs["runner"] = runner_log.read_text(errors="replace")
    return result


def _kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group ``process`` leads, then reap ``process``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


# -- inside: servers ---------------------------------------------------------------


@contextlib.contextmanager
def bind_doh(spec: BindSpec, ca_cert: Path, directory: Path) -> Iterator[DoHServer]:
    """BIND 9 serving ``spec.zone`` over DoH (from ``dns_servers``); stopped after."""
    from tests.integration.dns_servers import DoHFiles, start_bind

    cert, cert_key = Path(spec.cert), Path(spec.key)
    cert_key.chmod(0o644)  # named may drop privileges
    bind_dir = directory / "bind"
    bind_dir.mkdir(exist_ok=True)
    server = start_bind(DoHFiles(ca_cert, cert, cert_key), spec.zone, bind_dir)
    try:
        yield server
    finally:
        server.stop()


# -- inside: browsers --------------------------------------------------------------

BrowserOutcome = tuple[str | None, str | None]
"""What a browser run returns: (page text or DOM, error)."""


def _nss_db(directory: Path, ca_cert: Path) -> None:
    """An NSS database in ``directory`` trusting ``ca_cert`` for TLS servers."""
    write_nss_db(directory, ca_cert, certutil=find_program(CERTUTIL))


def _browser_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DBUS_", "XDG_", "DISPLAY", "WAYLAND"))
    }
    env.update(HOME=str(home), MOZ_HEADLESS="1", XDG_RUNTIME_DIR=str(home / "run"))
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    return env


def _run_bounded(
    argv: Sequence[str], env: dict[str, str], timeout: float, stderr: IO[bytes]
) -> tuple[bytes, bool]:
    """Run ``argv`` in its own process group; (stdout, timed out)."""
    process = subprocess.Popen(
        list(argv),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
        return out, False
    except subprocess.TimeoutExpired:
        _kill_group(process)
        out, _ = process.communicate()
        return out, True
    finally:
        _kill_group(process)


def run_chromium(
    url: str,
    doh_url: str,
    ca_cert: Path,
    directory: Path,
    timeout: float,
    *,
    quic: bool = False,
) -> BrowserOutcome:
    """``chromium --dump-dom URL`` with secure DoH; (DOM, error).

    With ``quic``, QUIC is on and forced for the URL's origin.
    """
    home = directory / "chromium-home"
    _nss_db(home / ".pki" / "nssdb", ca_cert)  # Chromium's trust store on Linux
    profile = home / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    # Secure mode: DoH only, no fallback to the system resolver.
    local_state = {"dns_over_https": {"mode": "secure", "templates": doh_url}}
    (profile / "Local State").write_text(json.dumps(local_state))
    flags = list(CHROMIUM_FLAGS)
    if quic:
        origin = urlsplit(url)
        flags.remove("--disable-quic")
        flags += [
            "--enable-quic",
            f"--origin-to-force-quic-on={origin.hostname}:{origin.port or 443}",
        ]
    argv = [
        find_program(CHROMIUM),
        *flags,
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
    ]
    with (directory / "chromium.log").open("wb") as stderr:
        out, timed_out = _run_bounded(argv, _browser_env(home), timeout, stderr)
    dom = out.decode("utf-8", "replace")
    if timed_out:
        return dom or None, f"chromium timed out after {timeout}s"
    if not dom.strip():
        return None, "chromium printed no DOM"
    return dom, None


class MarionetteError(RuntimeError):
    """A Marionette command failed; the message is Firefox's."""


class Marionette:
    """A minimal client of Firefox's Marionette protocol (version 3).

    Messages are ``LENGTH:JSON``; commands ``[0, id, name, params]``,
    responses ``[1, id, error, result]``.
    """

    def __init__(self, port: int, deadline: float) -> None:
        self._buffer = b""
        self._id = 0
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._sock.settimeout(max(1.0, deadline - time.monotonic()))
        hello = self._read()
        if not isinstance(hello, dict) or hello.get("marionetteProtocol") != 3:
            raise MarionetteError(f"unexpected Marionette greeting {hello!r}")

    def _read(self) -> Any:
        while b":" not in self._buffer:
            self._recv()
        length, _, rest = self._buffer.partition(b":")
        size = int(length)
        while len(rest) < size:
            self._recv()
            rest = self._buffer.partition(b":")[2]
        self._buffer = rest[size:]
        return json.loads(rest[:size])

    def _recv(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise MarionetteError("Firefox closed the Marionette connection")
        self._buffer += chunk

    def command(self, name: str, params: dict[str, Any] | None = None) -> Any:
        """Send one command and return its result (or raise its error)."""
        self._id += 1
        data = json.dumps([0, self._id, name, params or {}]).encode()
        self._sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            message = self._read()
            if message[0] == 1 and message[1] == self._id:
                if message[2] is not None:
                    error = message[2]
                    raise MarionetteError(
                        f"{name}: {error.get('error')}: {error.get('message')}"
                    )
                return message[3]

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()


def run_firefox(
    url: str, doh_url: str, ca_cert: Path, directory: Path, timeout: float
) -> BrowserOutcome:
    """Firefox ESR, headless, driven over Marionette; (page text, error)."""
    home = directory / "firefox-home"
    profile = home / "profile"
    _nss_db(profile, ca_cert)  # the profile's cert9.db
    prefs = {
        **FIREFOX_PREFS,
        "network.trr.uri": doh_url,
        "network.trr.custom_uri": doh_url,
        "marionette.port": MARIONETTE_PORT,
    }
    (profile / "user.js").write_text(
        "".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()
        )
    )
    argv = [
        find_program(FIREFOX),
        *("--headless", "--no-remote", "--marionette"),
        *("--profile", str(profile)),
    ]
    env = _browser_env(home)
    # Debug level logs "Got SSL_ERROR_ECH_RETRY_WITH_ECH, use retry echConfig".
    env.update(MOZ_LOG=FIREFOX_MOZ_LOG, MOZ_LOG_FILE=str(directory / "firefox-moz.log"))
    deadline = time.monotonic() + timeout
    page: str | None = None
    error: str | None = None
    with (directory / "firefox.log").open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            client = Marionette(MARIONETTE_PORT, deadline)
            try:
                client.command("WebDriver:NewSession", {"pageLoadStrategy": "normal"})
                # Leave time to read the page and quit before the deadline.
                remaining = int((deadline - time.monotonic()) * 1000)
                page_load = max(remaining - min(5000, remaining // 4), 1)
                client.command("WebDriver:SetTimeouts", {"pageLoad": page_load})
                try:
                    client.command("WebDriver:Navigate", {"url": url})
                except MarionetteError as navigation:
                    error = str(navigation)  # e.g. "Reached error page: ..."
                text = client.command(
                    "WebDriver:ExecuteScript",
                    {"script": "return document.body.innerText;", "args": []},
                )
                page = text.get("value") if isinstance(text, dict) else None
                with contextlib.suppress(MarionetteError, OSError):
                    client.command("Marionette:Quit", {"flags": ["eForceQuit"]})
            finally:
                client.close()
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except (OSError, MarionetteError, subprocess.TimeoutExpired) as failure:
            error = f"{error}; " if error else ""
            error += f"firefox: {type(failure).__name__}: {failure}"
        finally:
            _kill_group(process)
    return page, error


BROWSER_RUNNERS: dict[str, Callable[[str, str, Path, Path, float], BrowserOutcome]] = {
    "chromium": run_chromium,
    "firefox": run_firefox,
}


# -- inside: the runner ------------------------------------------------------------


def run_inside(scenario: Scenario) -> Result:
    """Everything :func:`main` does, in the namespace already."""
    directory = Path(scenario.workdir)
    ca_cert = Path(scenario.ca_cert)
    result = Result(doh_url=scenario.doh_url)
    services: dict[str, ServeProcess] = {}
    bind: DoHServer | None = None
    subprocess.run([find_program(IP), "link", "set", "lo", "up"], check=True)
    with contextlib.ExitStack() as stack:
        try:
            for spec in scenario.servers:
                log_path = directory / f"{spec.name}.log"
                services[spec.name] = stack.enter_context(
                    serve_process(spec.args, log_path, port=spec.port)
                )
            if scenario.bind is not None:
                bind = stack.enter_context(bind_doh(scenario.bind, ca_cert, directory))
                result.doh_url = bind.url
            if result.doh_url is None:
                raise ValueError("the scenario has no DoH server")
            started = time.monotonic()
            run_browser = BROWSER_RUNNERS[scenario.browser]
            if scenario.quic:
                if scenario.browser != "chromium":
                    raise ValueError("HTTP/3 scenarios are Chromium's")
                run_browser = functools.partial(run_chromium, quic=True)
            result.page, result.error = run_browser(
                scenario.url,
                result.doh_url,
                ca_cert,
                directory,
                scenario.browser_timeout,
            )
            result.seconds = round(time.monotonic() - started, 2)
        except Exception:
            result.error = traceback.format_exc()
        finally:
            for name, service in services.items():
                service.stop()
                result.logs[name] = service.log()
            if bind is not None:
                result.logs["named"] = bind.log()
    browser_log = directory / f"{scenario.browser}.log"
    if browser_log.exists():
        result.logs[scenario.browser] = browser_log.read_text(errors="replace")
    ech_lines = [
        line
        for path in sorted(directory.glob(f"{scenario.browser}-moz.log*"))
        for line in path.read_text(errors="replace").splitlines()
        if _ECH_WORD.search(line)
    ]
    if ech_lines:
        result.logs[f"{scenario.browser}-ech"] = "\n".join(ech_lines) + "\n"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Namespace runner: ``python -m tests.integration.browsers SCENARIO.json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m tests.integration.browsers SCENARIO.json")
        return 2
    scenario_path = Path(args[0])
    scenario = Scenario.from_json(scenario_path.read_text())
    result = run_inside(scenario)
    (scenario_path.parent / "result.json").write_text(result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
