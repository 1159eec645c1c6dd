"""``ech serve`` flags reach the service: trial decryption, limits, bad values."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from ech.keys import write_ech_key
from ech.tls.enums import AlertDescription
from tests.harness.serve import find_ech_command, run_ech, serve_process
from tests.server.conftest import (
    IO_TIMEOUT,
    ServerPKI,
    ech_key,
)
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
            assert 0.2 < seconds < 3.0

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
