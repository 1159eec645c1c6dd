"""``ech serve`` and ``ech connect`` for the TLS features of issue 10, as subprocesses.

0-RTT with a saved session (``--session``, ``--early-data``), client
certificates (``--client-ca``, ``--require-client-cert``, ``--cert/--key``),
checks at startup (a key that is not its certificate's, key files others
may read, empty key directories), and bad values of these flags.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.tls_files import (
    CLIENT_NAME,
    HIDDEN_NAME,
    Files,
    connect_json,
)
from tests.harness.serve import ServeProcess, free_port, run_ech, serve_process


@pytest.fixture
def early_server(tls_files: Files, tmp_path: Path) -> Iterator[ServeProcess]:
    """``ech serve --early-data 16384`` with ECH."""
    args = tls_files.serve_args("--early-data", "16384")
    with serve_process(args, tmp_path / "serve.log", port=free_port()) as server:
        yield server


def early(
    server: ServeProcess, tls_files: Files, session: Path
) -> tuple[int, dict[str, Any]]:
    """``ech connect --session SESSION --early-data``."""
    return connect_json(server, tls_files, "--session", session, "--early-data")


# 0-RTT ---------------------------------------------------------------------------


def test_early_data_with_ech(
    early_server: ServeProcess, tls_files: Files, tmp_path: Path
) -> None:
    """First run saves a ticket (0600); the second resumes and sends GET / as 0-RTT.

    With ECH accepted, the early data rides the inner hello's PSK; that the
    outer hello carries early_data too (ECH-46) is the core's, tested in
    tests/unit/tls/test_early_data.py.
    """
    session = tmp_path / "session.json"
    status, first = early(early_server, tls_files, session)
    assert status == 0, first
    assert (first["ech_status"], first["resumed"]) == ("accepted", False)
    assert first["early_data"] == "not_offered"  # no ticket yet
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    saved = json.loads(session.read_text())
    assert [t["server_name"] for t in saved["tickets"]] != []
    assert all(t["server_name"] == HIDDEN_NAME for t in saved["tickets"])
    assert all(t["max_early_data_size"] == 16384 for t in saved["tickets"])

    status, second = early(early_server, tls_files, session)
    assert status == 0, second
    assert (second["ech_status"], second["resumed"]) == ("accepted", True)
    assert second["early_data"] == "accepted"
    assert second["http_status"] == "HTTP/1.1 200 OK"
    view = second["server_view"]
    assert (view["early_data"], view["resumed"]) == ("accepted", True)
    assert view["server_name"] == HIDDEN_NAME
    lines = early_server.wait_connections(2)
    assert [line["early_data"] for line in lines] == ["not_offered", "accepted"]


def test_early_data_rejected_by_a_server_without_the_ticket_key(
    early_server: ServeProcess, tls_files: Files, tmp_path: Path
) -> None:
    """A ticket another server issued: early data rejected, the request sent again."""
    session = tmp_path / "session.json"
    with serve_process(
        tls_files.serve_args("--early-data", "16384"), tmp_path / "other.log"
    ) as other:
        status, _ = connect_json(other, tls_files, "--session", session)
        assert status == 0
    status, report = early(early_server, tls_files, session)
    assert status == 0, report
    assert (report["early_data"], report["resumed"]) == ("rejected", False)
    # RFC 8446 §4.2.10: the server skipped the 0-RTT data; the client sent
    # the request again after the handshake, so the page still came.
    assert report["http_status"] == "HTTP/1.1 200 OK"
    assert report["server_view"]["early_data"] == "rejected"


def test_a_server_without_early_data_resumes_without_it(
    tls_files: Files, tmp_path: Path
) -> None:
    """``--early-data 0`` (the default): tickets allow none, the client offers none."""
    session = tmp_path / "session.json"
    with serve_process(tls_files.serve_args(), tmp_path / "serve.log") as server:
        for _ in range(2):
            status, report = early(server, tls_files, session)
            assert status == 0, report
    assert report["resumed"] is True
    assert report["early_data"] == "not_offered"
    assert report["server_view"]["early_data"] == "not_offered"


def test_session_file_that_is_not_one_is_refused_without_echoing_it(
    tls_files: Files, tmp_path: Path
) -> None:
    session = tmp_path / "session.json"
    session.write_text('{"psk": "c2VjcmV0"}')
    result = run_ech(None, "connect", "127.0.0.1:1", "--session", session)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ech connect: error: argument --session: "), last
    assert "c2VjcmV0" not in result.stderr  # the contents may be secrets


# client certificates -------------------------------------------------------------


def test_client_certificate_required_with_ech(tls_files: Files, tmp_path: Path) -> None:
    """``--require-client-cert``: refused without one, its subject reported with one."""
    args = tls_files.serve_args("--client-ca", tls_files.ca, "--require-client-cert")
    with serve_process(args, tmp_path / "serve.log") as server:
        status, refused = connect_json(server, tls_files)
        assert status != 0
        assert "certificate_required" in refused["error"], refused
        cert, key = tls_files.client
        status, report = connect_json(server, tls_files, "--cert", cert, "--key", key)
        lines = server.wait_connections(2)
    assert status == 0, report
    # With ECH, CertificateRequest and the client's certificate travel in
    # the inner handshake (RFC 9849 §6.1: the outer one is never finished).
    assert report["ech_status"] == "accepted"
    subject = f"CN={CLIENT_NAME}"
    assert report["server_view"]["client_certificate_subject"] == subject
    assert [line["outcome"] for line in lines] == ["handshake_failed", "completed"]
    assert lines[0]["alert_sent"] == "certificate_required"
    assert lines[1]["client_certificate_subject"] == subject


def test_client_certificate_optional(tls_files: Files, tmp_path: Path) -> None:
    """``--client-ca`` alone: asked for, not required; null when none is sent."""
    args = tls_files.serve_args("--client-ca", tls_files.ca)
    with serve_process(args, tmp_path / "serve.log") as server:
        status, without = connect_json(server, tls_files)
        assert status == 0, without
        cert, key = tls_files.client
        status, with_cert = connect_json(
            server, tls_files, "--cert", cert, "--key", key
        )
        assert status == 0, with_cert
    assert without["server_view"]["client_certificate_subject"] is None
    assert with_cert["server_view"]["client_certificate_subject"] == (
        f"CN={CLIENT_NAME}"
    )


# startup checks --------------------------------------------------------------------


def test_a_key_that_is_not_the_certificates_is_refused(tls_files: Files) -> None:
    result = run_ech(
        None, "serve", "--listen", "127.0.0.1:0", "--workers", "1",
        "--cert", tls_files.public[0], "--key", tls_files.hidden[1],
    )  # fmt: skip
    assert result.returncode == 1
    assert "listening on" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert str(tls_files.public[0]) in line
    assert str(tls_files.hidden[1]) in line
    assert "do not match" in line


def test_key_files_others_can_read_are_warned_about(
    tls_files: Files, tmp_path: Path
) -> None:
    """Warned, not refused (``ech.serve.app`` says why); the warning says the fix."""
    cert, key = tmp_path / "public.pem", tmp_path / "public.key"
    cert.write_bytes(tls_files.public[0].read_bytes())
    key.write_bytes(tls_files.public[1].read_bytes())
    ech_key = tmp_path / "ech.pem"
    ech_key.write_bytes(tls_files.ech_key.read_bytes())
    os.chmod(key, 0o640)
    os.chmod(ech_key, 0o644)
    args: list[str | Path] = ["--cert", cert, "--key", key, "--ech-key", ech_key]
    with serve_process(args, tmp_path / "serve.log") as server:
        log = server.log()
    assert f"TLS key {key} is readable by group (mode 0640)" in log
    assert f"ECH key {ech_key} is readable by group and others (mode 0644)" in log
    assert log.count("chmod 600") == 2
    # The 0600 files of the PKI are not warned about.
    assert str(tls_files.hidden[1]) not in log


def test_an_empty_key_directory_is_warned_about(
    tls_files: Files, tmp_path: Path
) -> None:
    empty = tmp_path / "keys"
    empty.mkdir()
    args = [*tls_files.serve_args(), "--ech-key-dir", empty]
    with serve_process(args, tmp_path / "serve.log") as server:
        log = server.log()
    assert f"--ech-key-dir {empty} holds no ECH key files" in log
    assert "ech keygen --rotate" in log


# bad flags -----------------------------------------------------------------------

PER_ADDRESS = "--max-connections-per-address"

#: A flag, its bad value (None: the flag alone; FILE{stem} names a file of
#: the fixture's), and words of the fix the last line must carry.
SERVE_BAD_FLAGS: list[tuple[list[str], str, str]] = [
    (["--early-data", "-1"], "--early-data", "from 0 (off) to 4294967295"),
    (["--early-data", "4294967296"], "--early-data", "from 0 (off) to 4294967295"),
    (["--early-data", "lots"], "--early-data", "from 0 (off) to 4294967295"),
    (["--client-ca", "FILE:public.key"], "--client-ca", "CAs that issue client"),
    (["--client-ca", "FILE:missing.pem"], "--client-ca", "No such file"),
    (["--require-client-cert"], "--require-client-cert", "needs --client-ca CA.pem"),
    ([PER_ADDRESS, "0"], PER_ADDRESS, "positive"),
    ([PER_ADDRESS, "1.5"], PER_ADDRESS, "whole"),
    (["--request-head-timeout", "0"], "--request-head-timeout", "positive"),
    (["--request-head-timeout", "soon"], "--request-head-timeout", "number"),
    (["--cert", "FILE:public.key", "--key", "FILE:public.key"], "--cert", "leaf first"),
    (["--cert", "FILE:public.pem", "--key", "FILE:public.pem"], "--key", "issued for"),
    (["--ech-key", "FILE:public.pem"], "--ech-key", "ech keygen -o FILE"),
    (["--cert", "FILE:public.pem", "--key", "FILE:public.key",
      "--cert", "FILE:public.pem"],
     "--key", "one --key for each --cert (got 2 --cert and 1 --key)"),
    (["--ech-key-dir="], "--ech-key-dir", "ech keygen --rotate DIR"),
]  # fmt: skip

CONNECT_BAD_FLAGS: list[tuple[list[str], str, str]] = [
    (["--cert", "FILE:client.pem"], "--cert", "needs --key KEY.pem"),
    (["--key", "FILE:client.key"], "--key", "needs --cert CHAIN.pem"),
    (["--cert", "FILE:client.pem", "--key", "FILE:public.key"], "--key", "issued for"),
    (["--cert", "FILE:client.key", "--key", "FILE:client.key"], "--cert", "leaf first"),
    (["--early-data"], "--early-data", "needs --session FILE"),
    (["--session", "FILE:nowhere/session.json"], "--session", "create it first"),
    (["--session", "FILE:ca.pem"], "--session", "one that ech connect --session wrote"),
]  # fmt: skip


def _files_in(args: list[str], directory: Path) -> list[str]:
    return [
        str(directory / a.removeprefix("FILE:")) if a.startswith("FILE:") else a
        for a in args
    ]


def _assert_one_line_error(
    result: subprocess.CompletedProcess[str],
    command: str,
    flag: str,
    fix: str,
) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ech {command}: error: argument {flag}: "), last
    assert fix in last, last


@pytest.mark.parametrize(
    ("args", "flag", "fix"),
    SERVE_BAD_FLAGS,
    ids=[" ".join(a) for a, _, _ in SERVE_BAD_FLAGS],
)
def test_bad_serve_flags(
    tls_files: Files, args: list[str], flag: str, fix: str
) -> None:
    base = ["--cert", str(tls_files.public[0]), "--key", str(tls_files.public[1])]
    if "--cert" in args:
        base = []
    result = run_ech(
        None,
        "serve",
        "--listen",
        "127.0.0.1:0",
        *base,
        *_files_in(args, tls_files.directory),
    )
    _assert_one_line_error(result, "serve", flag, fix)


@pytest.mark.parametrize(
    ("args", "flag", "fix"),
    CONNECT_BAD_FLAGS,
    ids=[" ".join(a) for a, _, _ in CONNECT_BAD_FLAGS],
)
def test_bad_connect_flags(
    tls_files: Files, args: list[str], flag: str, fix: str
) -> None:
    # Port 1 on loopback: nothing listens; a flag error must come first.
    result = run_ech(
        None, "connect", "127.0.0.1:1", "--sni", HIDDEN_NAME,
        *_files_in(args, tls_files.directory),
    )  # fmt: skip
    _assert_one_line_error(result, "connect", flag, fix)
