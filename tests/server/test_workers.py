"""``ech serve --workers 2`` as a subprocess: one port, sums, restarts, orphans.

Rotation and graceful shutdown under workers are in ``test_keyring.py`` and
``test_shutdown.py`` (parametrized over ``--workers 1`` and ``2``), exact
metric counts in ``test_logs_metrics.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.keys import write_ech_key
from ech.quic.client import open_http3
from tests.harness.serve import ServeProcess, run_ech, serve_process
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    ServerPKI,
    config_list,
    ech_key,
    fetch,
)
from tests.server.test_logs_metrics import scrape

# The fields of a connection line (a contract, ech.serve.connection_log), and
# ``worker`` beside them.
LINE_FIELDS = {
    "peer", "outcome", "ech_status", "outer_server_name", "server_name",
    "tls_version", "cipher_suite", "group", "alpn", "backend", "resumed",
    "hello_retry", "handshake_ms", "duration_ms", "alert_sent",
    "alert_received", "error", "ech_reason", "early_data",
    "client_certificate_subject", "worker",
}  # fmt: skip


def samples(port: int) -> dict[str, float]:
    """The scraped metrics, ``name{labels}`` to value."""
    _, text = scrape(port)
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def key_args(
    pki: ServerPKI, tmp_path: Path, config_id: int
) -> tuple[list[str], ECHConfigList]:
    """``ech serve`` arguments with a fresh ECH key, and its config list."""
    key = ech_key(config_id)
    write_ech_key(tmp_path / "ech.pem", key)
    return [*pki.cert_args(), "--ech-key", str(tmp_path / "ech.pem")], config_list(key)


async def fetch_accepted(
    server: ServeProcess, pki: ServerPKI, configs: ECHConfigList, count: int
) -> None:
    """``count`` ECH-accepted GETs, a few at a time; every one must succeed."""
    client = pki.client_config()

    async def one() -> None:
        _, page = await fetch(
            server.port, client, HIDDEN_NAME, ech_configs=configs, ech_retry=False
        )
        assert page["ech_status"] == "accepted"

    for start in range(0, count, 4):
        await asyncio.gather(*(one() for _ in range(min(4, count - start))))


def remaining_stdout(server: ServeProcess) -> list[str]:
    lines = []
    while True:
        try:
            line = server.lines.get(timeout=IO_TIMEOUT)
        except queue.Empty:
            break
        if line is None:
            break
        lines.append(line)
    return lines


def test_two_workers_serve_one_port_over_tcp_and_quic_and_sum_metrics(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    args, configs = key_args(server_pki, tmp_path, 21)
    args.append("--http3")
    log = tmp_path / "serve.log"
    with serve_process(args, log, metrics=True, workers=2) as server:
        assert server.metrics_port is not None
        assert set(server.worker_pids()) == {0, 1}

        async def main() -> list[str]:
            await fetch_accepted(server, server_pki, configs, 16)
            h3_config = ClientConfig(
                trust_store=(server_pki.ca.certificate,), alpn_protocols=("h3",)
            )
            versions = []
            for _ in range(2):
                async with asyncio.timeout(IO_TIMEOUT):
                    async with await open_http3(
                        "127.0.0.1",
                        server.port,
                        h3_config,
                        HIDDEN_NAME,
                        ech_configs=configs,
                    ) as h3:
                        page = json.loads((await h3.request()).body)
                versions.append(page["http_version"])
            return versions

        assert asyncio.run(main()) == ["h3", "h3"]
        lines = server.wait_connections(18)
        # Each connection line has the usual fields and names its worker.
        assert all(set(line) == LINE_FIELDS for line in lines), lines[0]
        tcp_workers = {line["worker"] for line in lines if line["alpn"] != "h3"}
        assert tcp_workers == {0, 1}  # 16 connections: 2 ** -15 odds of one
        metrics = samples(server.metrics_port)
        assert metrics['ech_connections_total{ech_status="accepted"}'] == 18
        assert metrics['ech_connection_outcomes_total{outcome="completed"}'] == 18
        assert metrics["ech_handshake_seconds_count"] == 18
        assert metrics["ech_connections_open"] == 0
        assert metrics['ech_keys{policy="retry"}'] == 1  # not one per worker
        assert metrics["ech_workers"] == 2
        assert metrics["ech_worker_restarts_total"] == 0
        assert server.stop() == 0
        # The port was announced once, by the supervisor.
        assert not [x for x in remaining_stdout(server) if "listening" in x]
    text = server.log()
    assert "Traceback" not in text
    assert "[worker 0]" in text
    assert "[worker 1]" in text


def test_a_killed_worker_is_restarted_and_the_service_keeps_answering(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    args, configs = key_args(server_pki, tmp_path, 22)
    with serve_process(args, tmp_path / "serve.log", metrics=True, workers=2) as server:
        assert server.metrics_port is not None
        victim = server.worker_pids()[1]
        asyncio.run(fetch_accepted(server, server_pki, configs, 8))
        before = samples(server.metrics_port)  # worker 1's counts, fresh
        os.kill(victim, signal.SIGKILL)
        # Connections the kernel hashes to the dead worker's socket wait in
        # its queue for the replacement: none fails.
        asyncio.run(fetch_accepted(server, server_pki, configs, 16))
        server.wait_log(
            rf"worker 1 \(pid {victim}\) was killed by SIGKILL; restarting it"
        )
        deadline = time.monotonic() + IO_TIMEOUT
        while server.worker_pids()[1] == victim:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        asyncio.run(fetch_accepted(server, server_pki, configs, 8))
        after = samples(server.metrics_port)
        accepted = 'ech_connections_total{ech_status="accepted"}'
        assert before[accepted] == 8
        assert after[accepted] == 32  # the dead worker's counts are kept
        assert after["ech_worker_restarts_total"] == 1
        assert after["ech_workers"] == 2
        assert server.stop() == 0
    assert len(server.connections()) >= 32 - 8  # the victim's lines may be lost
    assert "Traceback" not in server.log()


def test_workers_shut_down_when_their_supervisor_is_killed(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    args, _ = key_args(server_pki, tmp_path, 23)
    with serve_process(args, tmp_path / "serve.log", workers=2) as server:
        pids = list(server.worker_pids().values())
        server.process.kill()
        server.process.wait(IO_TIMEOUT)
        deadline = time.monotonic() + IO_TIMEOUT
        while alive := [pid for pid in pids if running(pid)]:
            assert time.monotonic() < deadline, f"orphans {alive}: {server.log()}"
            time.sleep(0.05)
        server.wait_log(r"supervisor gone: shutting down", 2)


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (reparented to a non-reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# Without SO_REUSEPORT's balancing (BSD, macOS), one shared socket. The
# supervisor decides; its workers are the usual ones.
SHARED_SOCKET = (
    "import sys, ech.serve.workers as w\n"
    "w.reuse_port_balances = lambda: False\n"
    "from ech.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_one_shared_socket_where_reuse_port_does_not_balance(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    args, configs = key_args(server_pki, tmp_path, 24)
    args.append("--http3")
    command = [sys.executable, "-c", SHARED_SOCKET]
    log = tmp_path / "serve.log"
    with serve_process(args, log, workers=2, command=command) as server:
        assert "one shared socket" in server.log()

        async def main() -> str:
            await fetch_accepted(server, server_pki, configs, 8)
            h3_config = ClientConfig(
                trust_store=(server_pki.ca.certificate,), alpn_protocols=("h3",)
            )
            async with asyncio.timeout(IO_TIMEOUT):
                async with await open_http3(
                    "127.0.0.1",
                    server.port,
                    h3_config,
                    HIDDEN_NAME,
                    ech_configs=configs,
                ) as h3:
                    page: dict[str, Any] = json.loads((await h3.request()).body)
            return str(page["http_version"])

        assert asyncio.run(main()) == "h3"
        lines = server.wait_connections(9)
        # Only worker 0 reads the one UDP socket.
        assert [line["worker"] for line in lines if line["alpn"] == "h3"] == [0]
        assert server.stop() == 0
    assert "Traceback" not in server.log()


# A worker that exits at once (here: a stand-in for one that cannot start).
FAILING_WORKER = (
    "import asyncio, sys\n"
    "real = asyncio.create_subprocess_exec\n"
    "async def failing(*args, **kwargs):\n"
    "    code = 'import sys; sys.exit(3)'\n"
    "    return await real(sys.executable, '-c', code, **kwargs)\n"
    "asyncio.create_subprocess_exec = failing\n"
    "from ech.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_a_worker_that_cannot_start_fails_the_start_in_one_line(
    server_pki: ServerPKI,
) -> None:
    result = run_ech(
        [sys.executable, "-c", FAILING_WORKER],
        "serve", "--listen", "127.0.0.1:0", *server_pki.cert_args(),
        "--workers", "2",
    )  # fmt: skip
    assert result.returncode == 1
    assert "listening on" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ech serve: worker "), last
    assert "exited with status 3 before serving" in last
    assert "Traceback" not in result.stderr
