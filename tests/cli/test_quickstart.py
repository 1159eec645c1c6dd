"""The README's quickstart runs exactly as written (issue 17).

The shell block's five lines run one at a time in ``bash``, in a fresh
directory where ``.venv`` is this interpreter's environment, as someone
following the README after ``make demo`` would run them; only the port
changes (8443 may be taken). Then the Python block runs, against the same
server. Every Python process started carries the wire tap of
:mod:`tests.harness.wiretap` (``PYTHONPATH``), so the test reads what the
clients put on the network: ``public.example`` in clear, ``secret.example``
never. The server's connection log says what it decrypted.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ech.cli.certs import QUICKSTART_PORT, next_commands, wrap
from ech.pki import certificate_files
from tests.cli.conftest import HIDDEN_NAME, PUBLIC_NAME, shell_lines
from tests.harness.serve import (
    COMMAND_TIMEOUT,
    IO_TIMEOUT,
    STARTUP_TIMEOUT,
    ServeProcess,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WIRETAP = ROOT / "tests" / "harness" / "wiretap"
PROGRAM = ".venv/bin/ech"


def quickstart() -> tuple[str, str]:
    """The quickstart's shell block and Python block."""
    text = README.read_text()
    section = text[text.index("## Quickstart\n") :]
    section = section[: section.index("\n## ")]
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert shell is not None
    assert python is not None
    return shell.group(1), python.group(1)


def test_readme_quickstart_is_what_ech_certs_prints() -> None:
    """Five commands, in order, as ``ech certs`` (and ``ech demo``) print them."""
    shell = quickstart()[0]
    lines = [shlex.split(line, comments=True) for line in shell_lines(shell)]
    assert [argv[:2] for argv in lines] == [
        [PROGRAM, command] for command in ("certs", "keygen", "serve", "connect", "get")
    ]
    directory = Path(lines[0][2])
    commands = next_commands(certificate_files(directory), PROGRAM, QUICKSTART_PORT)
    printed = "\n".join([f"{PROGRAM} certs {directory}", *map(wrap, commands)])
    readme = "\n".join(re.sub(r"\s+#.*$", "", line) for line in shell.splitlines())
    assert readme == printed


@contextmanager
def ending_groups() -> Iterator[list[int]]:
    """Process groups to end (SIGTERM, then SIGKILL) when the block ends."""
    groups: list[int] = []
    try:
        yield groups
    finally:
        for group in groups:
            _end_group(group)


def _end_group(group: int) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def hidden_connections(server: ServeProcess) -> list[dict[str, Any]]:
    """The server's connection lines for the hidden name."""
    return [c for c in server.connections() if c["server_name"] == HIDDEN_NAME]


def wait_listening(log: Path) -> None:
    """Until ``ech serve`` (in the background) says it listens."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while "listening on " not in log.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"ech serve did not start: {log.read_text()}")
        time.sleep(0.05)


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    shell, python = quickstart()
    port = str(free_port())
    venv = Path(sys.prefix)
    assert (venv / "bin" / "ech").exists(), (
        f"no ech command in {venv}: pip install -e ."
    )
    work = tmp_path / "fresh"
    work.mkdir()
    (work / ".venv").symlink_to(venv)
    wire = tmp_path / "wire"
    wire.mkdir()
    path = os.pathsep.join(filter(None, [str(WIRETAP), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "ECH_WIRETAP": str(wire)}
    server_log = tmp_path / "serve.log"
    outputs: dict[str, str] = {}
    with ending_groups() as groups:
        for line in shell_lines(shell):
            line = line.replace(str(QUICKSTART_PORT), port)
            command = shlex.split(line)[1]
            if line.endswith("&"):  # the server, left running in the background
                with server_log.open("w") as log:
                    started = subprocess.Popen(
                        ["bash", "-c", line],
                        cwd=work,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        text=True,
                    )
                groups.append(started.pid)
                # bash returns at once (a zombie until reaped, which would
                # keep the group alive); the server runs on in its group.
                assert started.wait(COMMAND_TIMEOUT) == 0
                wait_listening(server_log)
                continue
            result = subprocess.run(
                ["bash", "-c", line],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            assert result.returncode == 0, (line, result.stdout, result.stderr)
            outputs[command] = result.stdout + result.stderr
        code = python.replace(str(QUICKSTART_PORT), port)
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["accepted", PUBLIC_NAME]

        # What the server decrypted: the hidden name three times (connect,
        # get, Python), each time by ECH behind the public name. Its lines
        # follow each close, after those of the DoH connections maybe.
        server = ServeProcess(started, "127.0.0.1", int(port), server_log)
        deadline = time.monotonic() + IO_TIMEOUT
        while len(hidden := hidden_connections(server)) < 3:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert len(hidden) == 3, server.log()
        assert {c["ech_status"] for c in hidden} == {"accepted"}
        assert {c["outer_server_name"] for c in hidden} == {PUBLIC_NAME}

    # What the clients put on the wire: the public name, never the hidden one.
    taps: dict[str, bytes] = defaultdict(bytes)
    for tap in wire.iterdir():  # PID-COMMAND.bin
        taps[tap.name.split("-", 1)[1]] += tap.read_bytes()
    for client in ("connect.bin", "get.bin", "-c.bin"):
        assert PUBLIC_NAME.encode() in taps[client], sorted(taps)
        assert HIDDEN_NAME.encode() not in taps[client]
        assert b"secret" not in taps[client]
    assert "PRIVATE KEY" not in "".join(outputs.values())
