"""``--require-ech``: protected names are refused without ECH, nothing leaks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import threading
from pathlib import Path

import pytest

from ech.aio import TLSStream, open_connection, start_server
from ech.blocking import connect, wrap_server
from ech.client.connection import ClientConnection
from ech.errors import PeerAlert
from ech.server.config import RequireECH
from ech.server.connection import NameRequiresECH, ServerConnection
from ech.tls.enums import AlertDescription, ContentType, NamedGroup
from tests.harness.serve import find_ech_command, run_ech, serve_process
from tests.helpers import parse_records, plain_alert
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    OTHER_NAME,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    fetch,
    run_service,
)

UNRECOGNIZED_NAME = plain_alert(AlertDescription.UNRECOGNIZED_NAME)


def test_alert_choice() -> None:
    assert NameRequiresECH.description == AlertDescription.UNRECOGNIZED_NAME


def test_refused_by_the_sans_io_server(server_pki: ServerPKI) -> None:
    """The policy lives in ServerConnection: every adapter honours it."""
    config = dataclasses.replace(
        server_pki.server_config([ech_key(1)]), require_ech=RequireECH()
    )
    client = ClientConnection(server_pki.client_config(), HIDDEN_NAME)
    client.start()
    server = ServerConnection(config)
    with pytest.raises(NameRequiresECH):
        server.receive_data(client.data_to_send())
    # Only the alert, in the clear: no ServerHello, no certificate.
    assert server.data_to_send() == UNRECOGNIZED_NAME


def test_refused_by_blocking_and_aio_servers(server_pki: ServerPKI) -> None:
    config = dataclasses.replace(
        server_pki.server_config([ech_key(1)]), require_ech=RequireECH()
    )
    client = server_pki.client_config()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        refused: list[BaseException] = []

        def serve_one() -> None:
            sock, _ = listener.accept()
            try:
                wrap_server(sock, config)
            except NameRequiresECH as error:
                refused.append(error)

        thread = threading.Thread(target=serve_one)
        thread.start()
        with pytest.raises(PeerAlert) as info:
            connect("127.0.0.1", port, client, HIDDEN_NAME, timeout=IO_TIMEOUT)
        thread.join(IO_TIMEOUT)
    assert info.value.description == AlertDescription.UNRECOGNIZED_NAME
    assert len(refused) == 1

    async def main() -> None:
        async def never(stream: TLSStream) -> None:
            raise AssertionError("handshake must not complete")

        server = await start_server(never, "127.0.0.1", 0, config)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(PeerAlert) as info:
                async with asyncio.timeout(IO_TIMEOUT):
                    await open_connection("127.0.0.1", port, client, HIDDEN_NAME)
            assert info.value.description == AlertDescription.UNRECOGNIZED_NAME

    asyncio.run(main())


def test_protected_names(server_pki: ServerPKI) -> None:
    config = server_pki.server_config([ech_key(1)])
    every = RequireECH()
    assert every.protects(HIDDEN_NAME, config)
    assert every.protects(OTHER_NAME.upper() + ".", config)
    assert not every.protects(PUBLIC_NAME, config)  # retries must stay possible
    assert not every.protects("unknown.example", config)
    listed = RequireECH((HIDDEN_NAME, "*.wild.example", PUBLIC_NAME))
    assert listed.protects(HIDDEN_NAME, config)
    assert listed.protects("a.wild.example", config)
    assert not listed.protects("a.b.wild.example", config)
    assert not listed.protects(OTHER_NAME, config)
    assert not listed.protects(PUBLIC_NAME, config)  # never, even if listed


async def raw_exchange(port: int, client: ClientConnection) -> bytes:
    """Send the client's first flight; all the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client.start()
    writer.write(client.data_to_send())
    received = bytearray()
    async with asyncio.timeout(IO_TIMEOUT):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
                if received.endswith(UNRECOGNIZED_NAME):
                    break
                # After a HelloRetryRequest, send the second ClientHello.
                with contextlib.suppress(Exception):
                    client.receive_data(chunk)
                writer.write(client.data_to_send())
    writer.close()
    return bytes(received)


@pytest.mark.parametrize("hello_retry", [False, True], ids=["one-hello", "hrr"])
def test_refused_without_ech_and_nothing_leaks(
    server_pki: ServerPKI, hello_retry: bool
) -> None:
    groups = {"groups": (NamedGroup.X25519,)} if hello_retry else {}
    config = server_pki.server_config([ech_key(1)], **groups)

    async def main() -> None:
        async with run_service(
            dataclasses.replace(config, require_ech=RequireECH())
        ) as running:
            client = ClientConnection(
                server_pki.client_config(key_share_groups=(NamedGroup.X25519MLKEM768,)),
                HIDDEN_NAME,
            )
            received = await raw_exchange(running.port, client)
            records = parse_records(received)
            # Only the alert (after the HRR, if any): no certificate, no keys.
            assert records[-1] == (ContentType.ALERT, UNRECOGNIZED_NAME[5:])
            kinds = [kind for kind, _ in records[:-1]]
            if hello_retry:
                assert ContentType.HANDSHAKE in kinds
                assert HIDDEN_NAME.encode() not in received
            else:
                assert kinds == []
            metrics = running.metrics
            assert metrics.value("ech_connection_outcomes_total", outcome="require_ech")
            alert = metrics.value("ech_alerts_sent_total", alert="unrecognized_name")
            assert alert == 1

    asyncio.run(main())


def test_ech_and_public_name_still_work(server_pki: ServerPKI) -> None:
    key, stale = ech_key(1), ech_key(2)
    client = server_pki.client_config()

    async def main() -> None:
        config = server_pki.server_config([key])
        async with run_service(
            dataclasses.replace(config, require_ech=RequireECH())
        ) as running:
            port = running.port
            _, page = await fetch(
                port, client, HIDDEN_NAME, ech_configs=config_list(key)
            )
            assert (page["ech_status"], page["server_name"]) == (
                "accepted",
                HIDDEN_NAME,
            )
            # Rejected ECH (stale config): the outer handshake is to the public
            # name, so the client gets retry_configs and retries.
            stream, page = await fetch(
                port, client, HIDDEN_NAME, ech_configs=config_list(stale)
            )
            assert stream.retried
            assert page["ech_status"] == "accepted"
            # The public name without ECH is served.
            _, page = await fetch(port, client, PUBLIC_NAME)
            assert page["ech_status"] == "not_offered"
            # Hidden names without ECH, or with GREASE, are refused.
            for grease in (False, True):
                with pytest.raises(PeerAlert) as refused:
                    async with asyncio.timeout(IO_TIMEOUT):
                        await open_connection(
                            "127.0.0.1",
                            port,
                            server_pki.client_config(ech_grease=grease),
                            OTHER_NAME,
                        )
                assert refused.value.description == AlertDescription.UNRECOGNIZED_NAME

    asyncio.run(main())


def test_require_ech_flag(server_pki: ServerPKI, tmp_path: Path) -> None:
    key_path = tmp_path / "key.pem"
    made = run_ech(
        find_ech_command(), "keygen", "--public-name", PUBLIC_NAME, "-o", key_path
    )
    assert made.returncode == 0, made.stderr
    configs = made.stdout.strip()
    args = [
        *server_pki.cert_args(),
        "--ech-key",
        str(key_path),
        "--require-ech",
        HIDDEN_NAME,
    ]
    with serve_process(args, tmp_path / "serve.log") as server:

        def connect(name: str, *extra: str) -> dict[str, object]:
            result = run_ech(
                find_ech_command(),
                "connect",
                f"127.0.0.1:{server.port}",
                "--sni",
                name,
                "--ca",
                server_pki.ca_file,
                "--json",
                *extra,
            )
            report: dict[str, object] = json.loads(result.stdout)
            return report

        assert connect(HIDDEN_NAME, "--ech-config-list", configs)["ech_status"] == (
            "accepted"
        )
        refused = connect(HIDDEN_NAME)
        assert "unrecognized_name" in str(refused["error"])
        assert connect(OTHER_NAME)["ech_status"] == "not_offered"  # not listed
        assert connect(PUBLIC_NAME)["ech_status"] == "not_offered"
        lines = server.wait_connections(4)
        assert [c["outcome"] for c in lines].count("require_ech") == 1
