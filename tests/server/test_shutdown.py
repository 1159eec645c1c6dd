"""Graceful shutdown of ``ech serve`` on SIGTERM/SIGINT, with one process or workers.

With ``--workers 2`` the signal goes to the supervisor, which tells each
worker; the listening port closes, open connections finish (or are closed
at the deadline), and everything exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ech.aio import TLSStream, open_connection
from ech.http import fetch_async
from tests.harness.serve import ServeProcess, serve_process
from tests.server.conftest import (
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
)


async def connect(server: ServeProcess, pki: ServerPKI) -> TLSStream:
    async with asyncio.timeout(IO_TIMEOUT):
        return await open_connection(
            "127.0.0.1", server.port, pki.client_config(), PUBLIC_NAME
        )


async def until_refused(port: int) -> None:
    """Wait until the listening socket is closed."""
    async with asyncio.timeout(IO_TIMEOUT):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except (ConnectionRefusedError, ConnectionResetError):
                return  # reset: the listener closed with our SYN in its queue
            writer.close()
            await asyncio.sleep(0.02)


async def exit_code(server: ServeProcess, limit: float) -> tuple[int, float]:
    started = time.monotonic()
    code = await asyncio.to_thread(server.process.wait, limit)
    return code, time.monotonic() - started


WORKERS = pytest.mark.parametrize("workers", [1, 2])


def workers_gone(server: ServeProcess) -> None:
    """After the supervisor's exit, none of its workers is left."""
    for pid in server.worker_pids().values():
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@WORKERS
def test_open_connection_finishes_after_sigterm(
    server_pki: ServerPKI, tmp_path: Path, workers: int
) -> None:
    args = [*server_pki.cert_args(), "--shutdown-timeout", "60"]
    with serve_process(args, tmp_path / "serve.log", workers=workers) as server:

        async def main() -> None:
            stream = await connect(server, server_pki)
            server.process.send_signal(signal.SIGTERM)
            await until_refused(server.port)
            # The open connection is still served, then the server exits.
            async with asyncio.timeout(IO_TIMEOUT):
                response = await fetch_async(stream, "/", host=PUBLIC_NAME)
            await stream.close()
            assert response.status_line == "HTTP/1.1 200 OK"
            # It exits when the connection ends, not at the 60 s deadline:
            # exit_code gives up after IO_TIMEOUT (10 s).
            code, _ = await exit_code(server, IO_TIMEOUT)
            assert code == 0

        asyncio.run(main())
        outcomes = [line["outcome"] for line in server.connections()]
        # Probes of until_refused that got in before the signal end peer_closed.
        assert outcomes.count("completed") == 1
        assert set(outcomes) <= {"completed", "peer_closed"}
        workers_gone(server)
    assert "Traceback" not in server.log()


@WORKERS
def test_lingering_connection_closed_at_deadline(
    server_pki: ServerPKI, tmp_path: Path, workers: int
) -> None:
    args = [*server_pki.cert_args(), "--shutdown-timeout", "0.5"]
    with serve_process(args, tmp_path / "serve.log", workers=workers) as server:

        async def main() -> None:
            stream = await connect(server, server_pki)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(IO_TIMEOUT):
                assert await stream.recv() == b""  # close_notify at the deadline
            assert 0.4 < time.monotonic() - started < 4.0
            await stream.close()
            code, _ = await exit_code(server, IO_TIMEOUT)
            assert code == 0

        asyncio.run(main())
        outcomes = [line["outcome"] for line in server.connections()]
        assert outcomes == ["shutdown"]
        workers_gone(server)


@WORKERS
def test_second_signal_stops_waiting(
    server_pki: ServerPKI, tmp_path: Path, workers: int
) -> None:
    args = [*server_pki.cert_args(), "--shutdown-timeout", "60"]
    with serve_process(args, tmp_path / "serve.log", workers=workers) as server:

        async def main() -> None:
            stream = await connect(server, server_pki)
            server.process.send_signal(signal.SIGTERM)
            await until_refused(server.port)
            server.process.send_signal(signal.SIGINT)
            try:
                code, seconds = await exit_code(server, 5.0)
            except subprocess.TimeoutExpired:
                raise AssertionError("the second signal did not stop it") from None
            assert code == 0
            assert seconds < 4.0
            await stream.close()

        asyncio.run(main())
        workers_gone(server)
