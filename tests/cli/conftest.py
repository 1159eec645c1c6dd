"""Fixtures for the ``ech`` command-line tests: the command runs as a subprocess.

* :func:`ech_command`: how to start ``ech`` (the venv's console script, else
  ``python -m ech``).
* :func:`cli_pki`: a throwaway CA, leaves for the public and hidden names, a
  CA the client must not trust, and ECH keys made with ``ech keygen``.
* :func:`running_server`: ``ech serve`` on a free loopback port, stopped
  (always) when the ``with`` block ends.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.pki import TestPKI

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0

# Config ids are fixed so the keys a test tells apart never share one.
SERVED_CONFIG_ID = 1
STALE_CONFIG_ID = 2
SECOND_CONFIG_ID = 3


def find_ech_command() -> list[str]:
    """The venv's ``ech`` script next to this interpreter, else ``python -m ech``."""
    script = shutil.which("ech", path=str(Path(sys.executable).parent))
    return [script] if script is not None else [sys.executable, "-m", "ech"]


@pytest.fixture(scope="session")
def ech_command() -> list[str]:
    """The argv prefix that runs the ``ech`` command."""
    return find_ech_command()


def run_ech(
    command: Sequence[str], *args: str | os.PathLike[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ech ARGS...`` to completion, capturing text output."""
    return subprocess.run(
        [*command, *(os.fspath(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        cwd=cwd,
    )


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ECHKeyFile:
    """An ``ech keygen`` output: the PEM file and the printed ECHConfigList."""

    path: Path
    config_list: str


@dataclass(frozen=True)
class CLIPKI:
    """Files for ``ech serve`` and ``ech connect``."""

    directory: Path
    ca: Path
    other_ca: Path
    public_cert: Path
    public_key: Path
    hidden_cert: Path
    hidden_key: Path
    served: ECHKeyFile
    stale: ECHKeyFile
    second: ECHKeyFile

    def cert_args(self) -> list[str]:
        """``--cert/--key`` for both the public and the hidden name."""
        return [
            "--cert",
            str(self.public_cert),
            "--key",
            str(self.public_key),
            "--cert",
            str(self.hidden_cert),
            "--key",
            str(self.hidden_key),
        ]


def keygen(command: Sequence[str], path: Path, config_id: int) -> ECHKeyFile:
    """Make an ECH key for :data:`PUBLIC_NAME` with ``ech keygen``."""
    result = run_ech(
        command,
        "keygen",
        "--public-name",
        PUBLIC_NAME,
        "--config-id",
        str(config_id),
        "-o",
        path,
    )
    assert result.returncode == 0, result.stderr
    return ECHKeyFile(path, result.stdout.strip())


@pytest.fixture(scope="session")
def cli_pki(tmp_path_factory: pytest.TempPathFactory, ech_command: list[str]) -> CLIPKI:
    """A CA, two leaves, an untrusted CA, and three ECH keys, as files."""
    pki = TestPKI.create(tmp_path_factory.mktemp("cli-pki"), "ech cli test CA")
    directory = pki.directory
    other = TestPKI.create(directory, "ech cli untrusted CA", stem="other-ca")
    public = pki.leaf("public", PUBLIC_NAME)
    hidden = pki.leaf("hidden", HIDDEN_NAME)
    return CLIPKI(
        directory=directory,
        ca=pki.ca_path,
        other_ca=other.ca_path,
        public_cert=public.cert_path,
        public_key=public.key_path,
        hidden_cert=hidden.cert_path,
        hidden_key=hidden.key_path,
        served=keygen(ech_command, directory / "served.pem", SERVED_CONFIG_ID),
        stale=keygen(ech_command, directory / "stale.pem", STALE_CONFIG_ID),
        second=keygen(ech_command, directory / "second.pem", SECOND_CONFIG_ID),
    )


@dataclass
class Server:
    """A running ``ech serve`` process."""

    process: subprocess.Popen[str]
    host: str
    port: int
    stderr_path: Path

    @property
    def address(self) -> str:
        """``HOST:PORT`` as ``ech connect`` takes it."""
        return f"{self.host}:{self.port}"

    def stderr(self) -> str:
        """What the server logged so far."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the server and wait for it; kill it if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def _read_lines(stream: Iterable[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def running_server(
    command: Sequence[str], args: Sequence[str | os.PathLike[str]], stderr_path: Path
) -> Iterator[Server]:
    """Start ``ech serve --listen 127.0.0.1:PORT ARGS``; wait for "listening on".

    The process is always stopped when the block ends, even if startup fails.
    """
    port = free_port()
    argv = [
        *command,
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        *(os.fspath(a) for a in args),
    ]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    server = Server(process, "127.0.0.1", port, stderr_path)
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=_read_lines, args=(process.stdout, lines), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"ech serve did not start in time: {server.stderr()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait(STOP_TIMEOUT)
                pytest.fail(
                    f"ech serve exited ({process.returncode}): {server.stderr()}"
                )
            if line.startswith("listening on "):
                assert line.split()[-1] == f"127.0.0.1:{port}"
                break
        yield server
    finally:
        server.stop()
        reader.join(STOP_TIMEOUT)  # the pipe reaches EOF once the process is gone
        process.stdout.close()


@pytest.fixture(scope="module")
def server(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``ech serve`` for both names, with the :attr:`CLIPKI.served` ECH key."""
    stderr_path = tmp_path_factory.mktemp("serve") / "stderr.log"
    with running_server(
        ech_command,
        [*cli_pki.cert_args(), "--ech-key", cli_pki.served.path],
        stderr_path,
    ) as running:
        yield running
