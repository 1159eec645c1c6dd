"""One log line per connection, no key material; the Prometheus endpoint."""

from __future__ import annotations

import asyncio
import base64
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ech.errors import ECHRejectedError
from ech.keys import load_ech_key
from ech.serve.keyring import rotate
from ech.serve.metrics import CONTENT_TYPE, Metric, Metrics
from tests.harness.grease import random_avoiding_config_ids
from tests.harness.serve import serve_process
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    fetch,
)

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*\})? '
    r"(-?[0-9.e+]+|NaN|[+-]Inf)$"
)


def test_render_format() -> None:
    metrics = Metrics(
        (
            Metric("a_total", "counter", "A thing.", ("kind",)),
            Metric("b_total", "counter", "B thing."),
            Metric("c_seconds", "summary", "C time."),
        )
    )
    metrics.inc("a_total", kind='say "hi"\\\n')
    metrics.inc("a_total", 2, kind="x")
    metrics.observe("c_seconds", 0.25)
    text = metrics.render()
    assert text == (
        "# HELP a_total A thing.\n"
        "# TYPE a_total counter\n"
        'a_total{kind="say \\"hi\\"\\\\\\n"} 1\n'
        'a_total{kind="x"} 2\n'
        "# HELP b_total B thing.\n"
        "# TYPE b_total counter\n"
        "b_total 0\n"
        "# HELP c_seconds C time.\n"
        "# TYPE c_seconds summary\n"
        "c_seconds_sum 0.25\n"
        "c_seconds_count 1\n"
    )
    with pytest.raises(ValueError, match="labels"):
        metrics.inc("a_total")


def secrets_of(path: Path) -> list[str]:
    """Text forms of a key file's private key that must never be logged."""
    key = load_ech_key(path)
    raw = key.private_key.to_bytes()
    pem = path.read_text()
    block = pem.split("-----BEGIN PRIVATE KEY-----")[1].split("-----END")[0]
    lines = [line for line in block.split() if len(line) >= 16]
    return [
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        *lines,
        "PRIVATE KEY",
    ]


def scrape(port: int, path: str = "/metrics") -> tuple[str, str]:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}{path}", timeout=IO_TIMEOUT
    ) as response:
        return response.headers["Content-Type"], response.read().decode()


@pytest.mark.parametrize("workers", [1, 2])
def test_logs_and_metrics(server_pki: ServerPKI, tmp_path: Path, workers: int) -> None:
    """Exact counts, with one process and summed over two workers."""
    keys = tmp_path / "keys"
    rotation = rotate(keys, PUBLIC_NAME)
    args = [*server_pki.cert_args(), "--ech-key-dir", str(keys)]
    client = server_pki.client_config()
    log_path = tmp_path / "serve.log"
    with serve_process(args, log_path, metrics=True, workers=workers) as server:
        assert server.metrics_port is not None

        async def clients() -> None:
            for _ in range(2):
                _, page = await fetch(
                    server.port, client, HIDDEN_NAME, ech_configs=rotation.published
                )
                assert page["ech_status"] == "accepted"
            with pytest.raises(ECHRejectedError):
                await fetch(
                    server.port,
                    client,
                    HIDDEN_NAME,
                    # The served config_id, another key: hpke_open_failed.
                    ech_configs=config_list(ech_key(rotation.key.config.config_id)),
                    ech_retry=False,
                )
            grease = server_pki.client_config(
                ech_grease=True,
                random=random_avoiding_config_ids(rotation.key.config.config_id),
            )
            _, page = await fetch(server.port, grease, HIDDEN_NAME)
            assert page["ech_status"] == "rejected"
            _, page = await fetch(server.port, client, PUBLIC_NAME)
            assert page["ech_status"] == "not_offered"
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"\x16\x03\x01\xff\xff")  # record_overflow
            async with asyncio.timeout(IO_TIMEOUT):
                await reader.read()
            writer.close()

        asyncio.run(clients())
        lines = server.wait_connections(6)

        content_type, text = scrape(server.metrics_port)
        assert content_type == CONTENT_TYPE
        samples = [line for line in text.splitlines() if not line.startswith("#")]
        assert all(SAMPLE.match(line) for line in samples), text
        for expected in (
            'ech_connections_total{ech_status="accepted"} 2',
            'ech_connections_total{ech_status="rejected"} 2',
            'ech_connections_total{ech_status="not_offered"} 1',
            'ech_connection_outcomes_total{outcome="completed"} 4',
            'ech_connection_outcomes_total{outcome="peer_alert"} 1',
            'ech_connection_outcomes_total{outcome="handshake_failed"} 1',
            'ech_alerts_received_total{alert="ech_required"} 1',
            'ech_alerts_sent_total{alert="record_overflow"} 1',
            "ech_required_received_total 1",
            'ech_not_accepted_total{reason="hpke_open_failed"} 1',
            'ech_not_accepted_total{reason="grease_shaped"} 1',
            "ech_connections_open 0",
            'ech_keys{policy="retry"} 1',
            'ech_keys{policy="accept"} 0',
            "ech_handshake_seconds_count 4",
        ):
            assert expected in samples, text
        for family in ("ech_connections_total", "ech_handshake_seconds"):
            assert f"# TYPE {family} " in text
            assert f"# HELP {family} " in text
        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(server.metrics_port, "/other")
        assert missing.value.code == 404

        by_outcome = {str(line["outcome"]): line for line in lines}
        accepted = next(line for line in lines if line["ech_status"] == "accepted")
        assert accepted["outer_server_name"] == PUBLIC_NAME
        assert accepted["server_name"] == HIDDEN_NAME
        assert accepted["tls_version"] == "TLSv1.3"
        assert accepted["cipher_suite"] == "TLS_AES_128_GCM_SHA256"
        assert isinstance(accepted["duration_ms"], float)
        assert by_outcome["peer_alert"]["alert_received"] == "ech_required"
        assert by_outcome["peer_alert"]["ech_status"] == "rejected"
        assert by_outcome["handshake_failed"]["alert_sent"] == "record_overflow"
        # Why ECH was not accepted, beside ech_status (None when it was).
        assert accepted["ech_reason"] is None
        assert by_outcome["peer_alert"]["ech_reason"] == "hpke_open_failed"
        grease = [line for line in lines if line["ech_reason"] == "grease_shaped"]
        assert [line["ech_status"] for line in grease] == ["rejected"]

        log = server.log()
        for secret in secrets_of(rotation.path):
            assert secret not in log
            assert secret not in text
    assert server.process.returncode == 0
