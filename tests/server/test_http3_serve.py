"""``ech serve --http3``: HTTP/3 on UDP at the same address, with ECH.

The same keys, handler, logs and metrics as over TCP; TCP responses carry
``Alt-Svc``; with ``--doh`` the HTTPS records list ``alpn=h3,h2,http/1.1``;
``ech get --http3`` and ``ech dig`` see it all from outside.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ech.aio import ConnectionReport, Limits, Observer, open_connection
from ech.client.config import ClientConfig
from ech.http import fetch_async
from ech.keys import write_ech_key
from ech.quic.client import open_http3
from ech.quic.server import HTTP3Server
from ech.serve.status_page import status_page
from tests.harness.grease import random_avoiding_config_ids
from tests.harness.pki import TestPKI
from tests.harness.serve import find_ech_command, run_ech, serve_process
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
)
from tests.server.test_logs_metrics import scrape


def _serve_args(
    pki: ServerPKI, key_path: Path, *extra: str, first: tuple[str, ...] = ()
) -> list[str]:
    return [*first, *pki.cert_args(), "--ech-key", str(key_path), "--http3", *extra]


def test_http3_beside_tcp_same_keys_logs_and_metrics(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    key = ech_key(1)
    key_path = tmp_path / "ech.pem"
    write_ech_key(key_path, key)
    args = _serve_args(server_pki, key_path)
    with serve_process(args, tmp_path / "serve.log", metrics=True) as server:

        async def main() -> tuple[dict[str, Any], dict[str, Any], str | None]:
            h3_config = ClientConfig(
                trust_store=(server_pki.ca.certificate,), alpn_protocols=("h3",)
            )
            async with asyncio.timeout(IO_TIMEOUT):
                async with await open_http3(
                    "127.0.0.1",
                    server.port,
                    h3_config,
                    HIDDEN_NAME,
                    ech_configs=config_list(key),
                ) as h3:
                    over_quic = await h3.request()
                stream = await open_connection(
                    "127.0.0.1",
                    server.port,
                    server_pki.client_config(),
                    HIDDEN_NAME,
                    ech_configs=config_list(key),
                )
                try:
                    over_tcp = await fetch_async(stream, "/", host=HIDDEN_NAME)
                finally:
                    await stream.close()
            return (
                json.loads(over_quic.body),
                json.loads(over_tcp.body),
                over_tcp.header("alt-svc"),
            )

        quic_page, tcp_page, alt_svc = asyncio.run(main())
        lines = server.wait_connections(2)
        assert server.metrics_port is not None
        _, metrics = scrape(server.metrics_port)
    assert quic_page["ech_status"] == tcp_page["ech_status"] == "accepted"
    assert quic_page["server_name"] == tcp_page["server_name"] == HIDDEN_NAME
    assert quic_page["outer_server_name"] == PUBLIC_NAME
    assert (quic_page["http_version"], quic_page["alpn"]) == ("h3", "h3")
    assert (tcp_page["http_version"], tcp_page["alpn"]) == ("http/1.1", "http/1.1")
    assert alt_svc == f'h3=":{server.port}"'  # RFC 7838, RFC 9114 §3.1.1
    assert sorted(line["alpn"] for line in lines) == ["h3", "http/1.1"]
    assert all(line["ech_status"] == "accepted" for line in lines)
    assert 'ech_connections_total{ech_status="accepted"} 2' in metrics


def test_ech_get_http3_from_doh_records(server_pki: ServerPKI, tmp_path: Path) -> None:
    """``ech get --http3`` with configs from the server's own DoH records."""
    key_path = tmp_path / "ech.pem"
    write_ech_key(key_path, ech_key(2))
    # DoH is reached at 127.0.0.1, without SNI: the first certificate is for
    # that address (the server's default without SNI).
    files = TestPKI(server_pki.ca, tmp_path, server_pki.ca_file)
    loopback = files.leaf("loopback", "127.0.0.1").serve_args()
    args = _serve_args(
        server_pki, key_path, "--doh", "/dns-query", first=tuple(loopback)
    )
    with serve_process(args, tmp_path / "serve.log") as server:
        doh = f"https://127.0.0.1:{server.port}/dns-query"
        ca = str(server_pki.ca_file)
        dig = run_ech(
            find_ech_command(),
            "dig",
            HIDDEN_NAME,
            "--port",
            str(server.port),
            "--doh",
            doh,
            "--ca",
            ca,
            "--json",
        )
        assert dig.returncode == 0, dig.stderr
        (endpoint,) = json.loads(dig.stdout)["endpoints"]
        assert endpoint["alpn"] == ["h3", "h2", "http/1.1"]
        url = f"https://{HIDDEN_NAME}:{server.port}/"
        got = run_ech(
            find_ech_command(),
            "get",
            url,
            "--http3",
            "--doh",
            doh,
            "--ca",
            ca,
            "--json",
        )
        assert got.returncode == 0, got.stderr
        outcome = json.loads(got.stdout)
        assert outcome["ech_status"] == "accepted"
        assert outcome["ech_from_dns"] is True
        assert outcome["http_version"] == "h3"
        page = json.loads(outcome["body"])
        assert page["http_version"] == "h3"
        assert page["server_name"] == HIDDEN_NAME


def test_ech_get_http3_with_a_given_config_list_and_a_retry(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    """A stale config: rejected over QUIC, retried once with retry_configs."""
    key_path = tmp_path / "ech.pem"
    write_ech_key(key_path, ech_key(3))
    stale = config_list(ech_key(4)).to_base64()
    with serve_process(_serve_args(server_pki, key_path), tmp_path / "s.log") as server:
        url = f"https://{HIDDEN_NAME}:{server.port}/"
        got: subprocess.CompletedProcess[str] = run_ech(
            find_ech_command(),
            "get",
            url,
            "--http3",
            "--ech-config-list",
            stale,
            "--address",
            "127.0.0.1",
            "--ca",
            str(server_pki.ca_file),
            "--json",
        )
        lines = server.wait_connections(2)
    assert got.returncode == 0, got.stderr
    outcome = json.loads(got.stdout)
    assert (outcome["ech_status"], outcome["retried"]) == ("accepted", True)
    # QUIC reports a connection once its closing period ends: in either order.
    by_status = {line["ech_status"]: line for line in lines}
    assert sorted(by_status) == ["accepted", "rejected"]
    assert by_status["rejected"]["alert_received"] == "ech_required"


def test_quic_report_says_why_ech_was_not_accepted(server_pki: ServerPKI) -> None:
    """HTTP3Server's report carries the server's reason, as the TCP server's does."""
    reports: list[ConnectionReport] = []

    class Collect(Observer):
        def connection_closed(self, report: ConnectionReport) -> None:
            reports.append(report)

    async def main() -> None:
        config = replace(server_pki.server_config([ech_key(1)]), alpn_protocols=("h3",))
        server = HTTP3Server(config, status_page, observer=Collect())
        await server.start("127.0.0.1", 0)
        try:
            grease = replace(
                server_pki.client_config(
                    ech_grease=True, random=random_avoiding_config_ids(1)
                ),
                alpn_protocols=("h3",),
            )
            async with asyncio.timeout(IO_TIMEOUT):
                async with await open_http3(
                    "127.0.0.1", server.port, grease, HIDDEN_NAME
                ) as h3:
                    assert (await h3.request()).status == 200
                # Let the server see the close and report it.
                while not reports:
                    await asyncio.sleep(0.01)
        finally:
            await server.shutdown(0)

    asyncio.run(main())
    assert [(str(r.ech_status), str(r.ech_reason)) for r in reports] == [
        ("rejected", "grease_shaped")
    ]


def test_quic_per_address_limit(server_pki: ServerPKI) -> None:
    """One address holds at most its share over QUIC too, refused as ``per_address``."""
    refused: list[str] = []
    closed: list[ConnectionReport] = []

    class Collect(Observer):
        def connection_refused(self, peer: str, reason: str) -> None:
            refused.append(reason)

        def connection_closed(self, report: ConnectionReport) -> None:
            closed.append(report)

    async def main() -> int:
        config = replace(server_pki.server_config(), alpn_protocols=("h3",))
        limits = Limits(max_connections=10, max_connections_per_address=1)
        server = HTTP3Server(config, status_page, limits=limits, observer=Collect())
        await server.start("127.0.0.1", 0)
        h3_config = replace(server_pki.client_config(), alpn_protocols=("h3",))
        try:
            async with asyncio.timeout(IO_TIMEOUT):
                async with await open_http3(
                    "127.0.0.1", server.port, h3_config, PUBLIC_NAME
                ) as held:
                    assert (await held.request()).status == 200
                    with pytest.raises(ConnectionError):
                        await open_http3(
                            "127.0.0.1", server.port, h3_config, PUBLIC_NAME
                        )
                while not closed:  # the held one, reported once closed
                    await asyncio.sleep(0.01)
                # Its slot is free again.
                async with await open_http3(
                    "127.0.0.1", server.port, h3_config, PUBLIC_NAME
                ) as again:
                    status = (await again.request()).status
        finally:
            await server.shutdown(0)
        return status

    assert asyncio.run(main()) == 200
    assert refused == ["per_address"]
