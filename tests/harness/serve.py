"""The ``ech`` command as a subprocess: one-shot runs and a running ``ech serve``.

* :func:`find_ech_command`: the argv prefix that runs ``ech``.
* :func:`run_ech`: one command to completion, output captured.
* :func:`ech_keygen`: ``ech keygen``, the printed ECHConfigList parsed.
* :func:`serve_process`: ``ech serve`` on 127.0.0.1, waited for (its
  ``listening on`` and ``metrics on`` lines), always stopped when the block
  ends; :class:`ServeProcess` reads its log. It runs ``--workers 1`` unless
  asked for more, so a test neither depends on nor scales with the CPUs of
  the machine it runs on.

Failures raise :class:`AssertionError` (not ``pytest.fail``), so the browser
runner can use these inside its namespace, outside pytest.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ech.config import ECHConfigList

COMMAND_TIMEOUT = 30.0
"""Seconds one ``ech`` command may take."""
STARTUP_TIMEOUT = 15.0
"""Seconds ``ech serve`` may take to print its ``listening on`` line."""
STOP_TIMEOUT = 10.0
"""Seconds ``ech serve`` may take to exit after a signal before it is killed."""
IO_TIMEOUT = 10.0
"""Seconds to wait for log lines that follow a connection."""

Arg = str | os.PathLike[str]


def find_ech_command() -> list[str]:
    """The venv's ``ech`` script next to this interpreter, else ``python -m ech``."""
    script = shutil.which("ech", path=str(Path(sys.executable).parent))
    return [script] if script is not None else [sys.executable, "-m", "ech"]


def run_ech(
    command: Sequence[str] | None,
    *args: Arg,
    cwd: Path | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``ech ARGS...`` to completion, capturing text output.

    Args:
        command: the argv prefix that runs ``ech``; None for
            :func:`find_ech_command`.
        args: the command line after it.
        cwd: the working directory.
        timeout: seconds before :class:`subprocess.TimeoutExpired`.
    """
    prefix = find_ech_command() if command is None else list(command)
    return subprocess.run(
        [*prefix, *(os.fspath(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def ech_keygen(
    public_name: str, output: Path, *args: Arg, kem: str = "x25519"
) -> ECHConfigList:
    """``ech keygen --public-name NAME --kem KEM ARGS -o OUTPUT``; the list printed."""
    result = run_ech(
        None, "keygen", "--public-name", public_name, "--kem", kem, *args, "-o", output
    )
    if result.returncode != 0:
        raise AssertionError(f"ech keygen failed ({result.returncode}):\n{result}")
    return ECHConfigList.from_base64(result.stdout)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_lines(text: str, kind: str) -> list[dict[str, Any]]:
    """The ``KIND {json}`` lines of an ``ech serve`` log, parsed."""
    found: list[dict[str, Any]] = []
    marker = f" {kind} {{"
    for line in text.splitlines():
        _, sep, rest = line.partition(marker)
        if sep:
            found.append(json.loads("{" + rest))
    return found


@dataclass
class ServeProcess:
    """A running ``ech serve``; its stderr (the log) goes to :attr:`log_path`."""

    process: subprocess.Popen[str]
    host: str
    port: int
    log_path: Path
    metrics_port: int | None = None
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    """Its stdout, line by line (None at the end)."""

    @property
    def address(self) -> str:
        """``HOST:PORT`` as ``ech connect`` takes it."""
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        """What it logged so far."""
        return self.log_path.read_text(errors="replace")

    def connections(self) -> list[dict[str, Any]]:
        """The ``connection {json}`` log lines (one per connection), parsed."""
        return _log_lines(self.log(), "connection")

    def handshakes(self, since: int = 0) -> list[dict[str, Any]]:
        """The connection lines from offset ``since`` on whose handshake completed.

        ``ech serve`` logs one line per connection, when it ends; one whose
        handshake failed (e.g. the client aborts after an ECH rejection)
        has ``handshake_ms`` null. A client that has just finished may be
        ahead of its line: :meth:`wait_handshakes` waits for it.
        """
        lines = _log_lines(self.log()[since:], "connection")
        return [line for line in lines if line["handshake_ms"] is not None]

    def wait_handshakes(self, since: int, count: int) -> list[dict[str, Any]]:
        """:meth:`handshakes` from ``since``, once there are ``count``."""
        deadline = time.monotonic() + IO_TIMEOUT
        while len(found := self.handshakes(since)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} handshakes: {self.log()}")
            time.sleep(0.02)
        return found

    def worker_pids(self) -> dict[int, int]:
        """The pid serving in each worker slot, by its latest ``serving`` line."""
        return {int(index): int(pid) for index, pid in _SERVING.findall(self.log())}

    def wait_log(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The log's matches of ``pattern``, once there are ``count``."""
        deadline = time.monotonic() + IO_TIMEOUT
        while len(found := list(re.finditer(pattern, self.log()))) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} x {pattern!r}: {self.log()}")
            time.sleep(0.02)
        return found

    def wait_connections(self, count: int) -> list[dict[str, Any]]:
        """The connection lines, once there are ``count`` (they follow the close)."""
        deadline = time.monotonic() + IO_TIMEOUT
        while len(lines := self.connections()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} connection lines: {self.log()}")
            time.sleep(0.02)
        return lines

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal it and wait; kill it if it lingers. Its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


#: The supervisor's line for a worker process that serves.
_SERVING = re.compile(r"worker (\d+) \(pid (\d+)\) serving")


def _pump_lines(stream: Iterable[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _next_line(lines: queue.Queue[str | None], deadline: float) -> str | None:
    """The next stdout line; None at its end; TimeoutError at the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    try:
        return lines.get(timeout=remaining)
    except queue.Empty:
        raise TimeoutError from None


def _port_of(line: str, host: str, port: int) -> int:
    """The port a ``listening on HOST:PORT`` line names; checks a port asked for."""
    address = line.split()[-1]
    reported = int(address.rsplit(":", 1)[1])
    if port and address != f"{host}:{port}":
        raise AssertionError(f"ech serve asked for {host}:{port} reported {line!r}")
    return reported


@contextmanager
def serve_process(
    args: Sequence[Arg],
    log_path: Path,
    *,
    port: int = 0,
    metrics: bool = False,
    command: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    workers: int | None = 1,
) -> Iterator[ServeProcess]:
    """``ech serve --listen HOST:PORT ARGS`` until the block ends.

    Args:
        args: the command line after ``--listen``.
        log_path: where its stderr (the log) goes.
        port: the port to listen on; 0 lets it pick one (the ``listening
            on`` line reports it). A given port must be the one reported.
        metrics: add ``--metrics HOST:0`` and wait for its ``metrics on``.
        command: the argv prefix that runs ``ech``; None for
            :func:`find_ech_command`.
        host: the address to listen on.
        workers: ``--workers N`` (None: leave the flag out, one worker per
            CPU).

    The process is always stopped (SIGTERM, then SIGKILL) when the block
    ends, even if it never started.

    Raises:
        AssertionError: it exited or timed out before listening.
    """
    argv = [*(find_ech_command() if command is None else command), "serve"]
    argv += ["--listen", f"{host}:{port}", *(os.fspath(a) for a in args)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if metrics:
        argv += ["--metrics", f"{host}:0"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=_pump_lines, args=(process.stdout, lines), daemon=True
    )
    reader.start()
    running = ServeProcess(process, host, 0, log_path, lines=lines)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        wanted = ["listening on "] + (["metrics on "] if metrics else [])
        while wanted:
            try:
                line = _next_line(lines, deadline)
            except TimeoutError:
                raise AssertionError(
                    f"ech serve did not start in {STARTUP_TIMEOUT}s "
                    f"(waiting for {wanted[0]!r}): {running.log()}"
                ) from None
            if line is None:
                process.wait(STOP_TIMEOUT)
                raise AssertionError(
                    f"ech serve exited ({process.returncode}) before printing "
                    f"{wanted[0]!r}: {running.log()}"
                )
            if not line.startswith(wanted[0]):
                raise AssertionError(
                    f"ech serve printed {line!r} instead of {wanted[0]!r}: "
                    f"{running.log()}"
                )
            if wanted.pop(0) == "listening on ":
                running.port = _port_of(line, host, port)
            else:
                running.metrics_port = int(line.rsplit(":", 1)[1])
        yield running
    finally:
        running.stop()
        reader.join(STOP_TIMEOUT)  # the pipe reaches EOF once the process is gone
        process.stdout.close()


def serve_args(
    certificates: Iterable[tuple[Path, Path]],
    ech_keys: Iterable[Path] = (),
    *,
    doh_path: str | None = None,
) -> list[str]:
    """``--cert C --key K ... --ech-key E ... [--doh PATH]`` for ``ech serve``."""
    args: list[str] = []
    for cert, key in certificates:
        args += ["--cert", str(cert), "--key", str(key)]
    for ech_key in ech_keys:
        args += ["--ech-key", str(ech_key)]
    if doh_path is not None:
        args += ["--doh", doh_path]
    return args
