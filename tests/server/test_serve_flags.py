"""``ech serve`` flags reach the service: trial decryption, limits, bad values."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path

import pytest

from ech.blocking import TLSSocket, connect
from ech.errors import TLSError
from ech.keys import write_ech_key
from ech.tls.enums import AlertDescription
from tests.harness.serve import find_ech_command, run_ech, serve_process
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    ech_key,
)
from tests.server.test_logs_metrics import scrape
from tests.unit.ech.ech_helpers import capture, encoded_from, hello_record, seal_outer


@pytest.mark.parametrize("trial", [False, True], ids=["by-config-id", "trial"])
def test_trial_decryption_flag(
    server_pki: ServerPKI, tmp_path: Path, trial: bool
) -> None:
    key = ech_key(5)
    write_ech_key(tmp_path / "key.pem", key)
    # Sealed to the key, under a config_id the server does not know, as a
    # client that randomizes config_id sends it (RFC 9849 §7.1, §10.4).
    cap = capture(key)
    outer, _ = seal_outer(cap.outer, encoded_from(cap.inner), key, config_id=0xEE)
    args = [*server_pki.cert_args(), "--ech-key", str(tmp_path / "key.pem")]
    if trial:
        args.append("--trial-decryption")
    with serve_process(args, tmp_path / "serve.log") as server:

        async def main() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(hello_record(outer))
            async with asyncio.timeout(IO_TIMEOUT):
                assert await reader.read(1)  # the server's flight has begun
            writer.close()

        asyncio.run(main())
        (line,) = server.wait_connections(1)
        assert line["ech_status"] == ("accepted" if trial else "rejected")


def test_limit_flags(server_pki: ServerPKI, tmp_path: Path) -> None:
    args = [
        *server_pki.cert_args(),
        "--max-client-hello",
        "2048",
        "--handshake-timeout",
        "0.3",
    ]
    with serve_process(args, tmp_path / "serve.log") as server:

        async def exchange(data: bytes) -> tuple[bytes, float]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            started = time.monotonic()
            writer.write(data)
            received = bytearray()
            async with asyncio.timeout(IO_TIMEOUT):
                with contextlib.suppress(ConnectionError):
                    while chunk := await reader.read(4096):
                        received += chunk
            writer.close()
            return bytes(received), time.monotonic() - started

        async def main() -> None:
            # A whole record whose ClientHello header claims 2049 bytes.
            received, _ = await exchange(b"\x16\x03\x01\x00\x04\x01\x00\x08\x01")
            assert received == bytes(
                (0x15, 3, 3, 0, 2, 2, AlertDescription.DECODE_ERROR)
            )
            received, seconds = await exchange(b"\x16\x03\x01")
            assert received == b""
            assert seconds > 0.2  # closed at the deadline, not before

        asyncio.run(main())
        outcomes = [c["outcome"] for c in server.wait_connections(2)]
        assert outcomes == ["client_hello_too_large", "handshake_timeout"]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--handshake-timeout", "0"),
        ("--idle-timeout", "-1"),
        ("--max-connections", "0"),
        ("--max-client-hello", "many"),
        ("--shutdown-timeout", "-5"),
        ("--key-poll", "-1"),
        ("--metrics", "nowhere"),
        ("--workers", "0"),
        ("--workers", "-2"),
        ("--workers", "1.5"),
        ("--workers", "two"),
    ],
)
def test_bad_values_are_refused(server_pki: ServerPKI, flag: str, value: str) -> None:
    result = run_ech(
        find_ech_command(), "serve", "--listen", "127.0.0.1:0",
        *server_pki.cert_args(), f"{flag}={value}",
    )  # fmt: skip
    assert result.returncode == 2
    # argparse's usage, then one line that names the flag and the value.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ech serve: error: argument {flag}: "), last
    assert value in last
    assert "Traceback" not in result.stderr


def test_bad_key_directory(server_pki: ServerPKI, tmp_path: Path) -> None:
    write_ech_key(tmp_path / "only.accept.pem", ech_key(1))
    for directory, needle in (
        (tmp_path / "missing", "missing"),
        (tmp_path, "advertised"),
    ):
        result = run_ech(
            find_ech_command(), "serve", "--listen", "127.0.0.1:0",
            *server_pki.cert_args(), "--ech-key-dir", directory,
        )  # fmt: skip
        assert result.returncode == 1
        assert needle in result.stderr
        assert "listening on" not in result.stdout
        assert "Traceback" not in result.stderr


# slow clients: per-address limit and request-head deadline ---------------------------

SLOWLORIS = 50
"""Slow connections opened from 127.0.0.2, as many as --max-connections."""


def _from_127_0_0_2(address: tuple[str, int], timeout: float | None) -> socket.socket:
    return socket.create_connection(address, timeout, source_address=("127.0.0.2", 0))


def _slowloris(port: int, pki: ServerPKI) -> list[TLSSocket]:
    """Handshakes from 127.0.0.2, each then sending one byte of a request head.

    A connection the server closes at once (a limit) fails its handshake
    and is not returned.
    """
    held: list[TLSSocket] = []
    for _ in range(SLOWLORIS):
        try:
            tls = connect(
                "127.0.0.1",
                port,
                pki.client_config(),
                PUBLIC_NAME,
                timeout=IO_TIMEOUT,
                socket_factory=_from_127_0_0_2,
            )
        except (TLSError, OSError):
            continue
        tls.sendall(b"G")  # the start of a head that never ends
        held.append(tls)
    return held


@pytest.mark.parametrize("per_address", [None, SLOWLORIS], ids=["default", "off"])
def test_slowloris_from_one_address_leaves_room_for_others(
    server_pki: ServerPKI, tmp_path: Path, per_address: int | None
) -> None:
    """50 slow clients on 127.0.0.2 do not stop one on 127.0.0.1 being served.

    By default an address may hold half of --max-connections, so the other
    half stays free; with the limit raised to all of it (the control run),
    the same 50 connections take every slot and the client is turned away.
    """
    args = [
        *server_pki.cert_args(),
        *("--max-connections", str(SLOWLORIS)),
        # Long enough that the head deadline is not what frees the slots.
        *("--request-head-timeout", "60"),
    ]
    if per_address is not None:
        args += ["--max-connections-per-address", str(per_address)]
    with serve_process(args, tmp_path / "serve.log", metrics=True) as server:
        held = _slowloris(server.port, server_pki)
        try:
            result = run_ech(
                find_ech_command(), "connect", server.address,
                "--sni", HIDDEN_NAME, "--ca", server_pki.ca_file, "--json",
            )  # fmt: skip
            assert server.metrics_port is not None
            _, metrics = scrape(server.metrics_port)
        finally:
            for tls in held:
                tls.socket.close()
        log = server.log()
    if per_address is None:
        assert len(held) == SLOWLORIS // 2
        assert result.returncode == 0, result
        assert json.loads(result.stdout)["server_view"]["server_name"] == HIDDEN_NAME
        refused = (
            f'ech_connection_outcomes_total{{outcome="per_address"}} {SLOWLORIS // 2}'
        )
        assert refused in metrics
        assert "127.0.0.2 holds --max-connections-per-address 25" in log
    else:
        assert len(held) == SLOWLORIS
        assert result.returncode != 0, result
        assert 'ech_connection_outcomes_total{outcome="over_capacity"} 1' in metrics
        assert "per_address" not in metrics


def test_request_head_timeout(server_pki: ServerPKI, tmp_path: Path) -> None:
    """A client silent after its handshake is closed; the log says why."""
    args = [*server_pki.cert_args(), "--request-head-timeout", "0.2"]
    with serve_process(args, tmp_path / "serve.log") as server:
        with connect(
            "127.0.0.1", server.port, server_pki.client_config(), PUBLIC_NAME
        ) as tls:
            tls.socket.settimeout(IO_TIMEOUT)
            assert tls.recv() == b""  # closed by the server, not by our timeout
        (line,) = server.wait_connections(1)
    assert line["outcome"] == "request_head_timeout"
    assert line["error"] is not None
    assert "0.2" in line["error"]
