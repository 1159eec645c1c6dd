"""``ech serve`` at startup and in its log: the summary, one line per connection.

Also the warning of ``ech keygen --rotate`` when ``--retire-after`` is
shorter than the TTL ``ech serve --doh`` answers with.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ech.dns.publish import DEFAULT_DNS_TTL
from tests.cli.tls_files import (
    HIDDEN_NAME,
    PUBLIC_NAME,
    Files,
    connect_json,
)
from tests.harness.serve import run_ech, serve_process

# startup summary and log lines -------------------------------------------------------


def test_startup_summary(tls_files: Files, tmp_path: Path) -> None:
    """One block on stderr: names and certificates, ECH keys, every address."""
    args = tls_files.serve_args("--doh", "/dns-query", "--http3")
    with serve_process(args, tmp_path / "serve.log", metrics=True) as server:
        server.wait_log("metrics: ")
        log = server.log()
    address = f"127.0.0.1:{server.port}"
    block = log[log.index("ech serve: ready") :].splitlines()[:9]
    assert block[1].startswith(f"  names:   {PUBLIC_NAME}  (public.pem, expires ")
    assert block[2].strip().startswith(f"{HIDDEN_NAME}  (hidden.pem, expires ")
    assert re.search(r", in \d+ days\)$", block[1]), block[1]
    assert block[3] == "  ECH:     on, 1 key"
    assert block[4].split() == [
        *("config_id", "7", "public_name", PUBLIC_NAME),
        *("KEM", "DHKEM_X25519_HKDF_SHA256", "(0x0020)", "advertised", "ech.pem"),
    ]
    assert block[5] == f"  TLS:     {address} (TCP)"
    assert block[6] == f"  HTTP/3:  {address} (UDP)"
    assert block[7] == f"  DoH:     https://{address}/dns-query"
    metrics = f"http://127.0.0.1:{server.metrics_port}/metrics"
    assert block[8] == f"  metrics: {metrics}"
    assert log.count("ech serve: ready") == 1


def test_startup_summary_without_ech_doh_http3_or_metrics(
    tls_files: Files, tmp_path: Path
) -> None:
    args: list[str | Path] = [
        "--cert",
        tls_files.public[0],
        "--key",
        tls_files.public[1],
    ]
    with serve_process(args, tmp_path / "serve.log", workers=2) as server:
        server.wait_log("metrics: ")
        log = server.log()
    assert "  ECH:     off (no --ech-key or --ech-key-dir keys)" in log
    assert "  HTTP/3:  off (--http3)" in log
    assert "  DoH:     off (--doh PATH)" in log
    assert "  metrics: off (--metrics)" in log
    assert log.count("ech serve: ready") == 1  # the supervisor's, not each worker's


@pytest.mark.parametrize("workers", [1, 2])
def test_one_log_line_per_connection(
    tls_files: Files, tmp_path: Path, workers: int
) -> None:
    """Each connection is logged once, when it ends, with every field."""
    with serve_process(
        tls_files.serve_args(), tmp_path / "serve.log", workers=workers
    ) as server:
        for _ in range(3):
            status, _ = connect_json(server, tls_files)
            assert status == 0
        lines = server.wait_connections(3)
        log = server.log()
    assert len(lines) == 3
    # Before, a "handshake {json}" line repeated the same fields.
    assert " handshake {" not in log
    for line in lines:
        assert line["outcome"] == "completed"
        assert line["ech_status"] == "accepted"
        assert line["server_name"] == HIDDEN_NAME
        assert line["client_certificate_subject"] is None
        assert line["handshake_ms"] is not None


# key retirement against the DNS TTL ------------------------------------------------


@pytest.mark.requirement("ECH-11")
@pytest.mark.parametrize("retire_after", [DEFAULT_DNS_TTL - 1, DEFAULT_DNS_TTL])
def test_retire_after_shorter_than_the_dns_ttl_is_warned_about(
    tmp_path: Path, retire_after: int
) -> None:
    """Keys must outlive the configs resolvers cache (ECH-11)."""
    result = run_ech(
        None, "keygen", "--public-name", PUBLIC_NAME, "--rotate", tmp_path / "keys",
        "--retire-after", str(retire_after),
    )  # fmt: skip
    assert result.returncode == 0, result
    warned = "warning: --retire-after" in result.stderr
    assert warned == (retire_after < DEFAULT_DNS_TTL), result.stderr
    if warned:
        assert f"({DEFAULT_DNS_TTL} s)" in result.stderr
        assert f"use --retire-after {DEFAULT_DNS_TTL} or more" in result.stderr
