"""``ech probe`` against ``ech serve``; ``ech probe-client`` against ``ech connect``.

The full probe runs here, as a person would run it, in each mode ``ech
serve`` has: shared mode, ``--trial-decryption``, and ``--http3`` probed
over QUIC. Our own server must pass every check that applies; our own
client every client check.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from ech.pki import TestCA
from tests.cli.conftest import CLIPKI, HIDDEN_NAME, PUBLIC_NAME
from tests.harness.serve import free_port, run_ech, serve_process

pytestmark = pytest.mark.timeout(180)


def probe(
    command: list[str], cli_pki: CLIPKI, port: int, *extra: str
) -> tuple[int, dict[str, Any]]:
    result = run_ech(
        command,
        "probe",
        f"127.0.0.1:{port}",
        "--sni",
        HIDDEN_NAME,
        "--ech-config-list",
        f"@{cli_pki.served.path.with_suffix('.b64')}",
        "--ca",
        cli_pki.ca,
        "--json",
        *extra,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def served_b64(cli_pki: CLIPKI) -> Path:
    path = cli_pki.served.path.with_suffix(".b64")
    path.write_text(cli_pki.served.config_list)
    return path


def check_report(report: dict[str, Any], transport: str) -> None:
    """A well-formed report in which every check that applies passed."""
    assert report["probe"] == "server"
    assert report["transport"] == transport
    assert report["public_name"] == "public.example"
    assert {"ech", "python", "aioquic"} <= set(report["versions"])
    checks = report["checks"]
    assert len(checks) >= 30
    for entry in checks:
        assert set(entry) >= {
            "id",
            "checklist",
            "rfc",
            "result",
            "expected",
            "observed",
        }
        assert entry["rfc"].startswith("RFC ")
        assert entry["checklist"], entry["id"]
        # The ids of docs/conformance.rst, the same numbers as "checklist".
        assert entry["requirements"] == [f"ECH-{n}" for n in entry["checklist"]]
    bad = [c for c in checks if c["result"] not in ("pass", "not_applicable")]
    assert not bad, json.dumps(bad, indent=2)
    assert report["summary"]["fail"] == report["summary"]["error"] == 0
    assert report["ok"] is True


@pytest.mark.parametrize("mode", [[], ["--trial-decryption"]], ids=["shared", "trial"])
def test_probe_passes_every_check_against_ech_serve(
    ech_command: list[str],
    cli_pki: CLIPKI,
    served_b64: Path,
    tmp_path: Path,
    mode: list[str],
) -> None:
    with serve_process(
        [*cli_pki.cert_args(), "--ech-key", cli_pki.served.path, *mode],
        tmp_path / "stderr.log",
        command=ech_command,
    ) as server:
        status, report = probe(ech_command, cli_pki, server.port)
    assert status == 0
    check_report(report, "tcp")
    assert all(c["result"] == "pass" for c in report["checks"])


def test_probe_over_quic_passes_against_ech_serve_http3(
    ech_command: list[str], cli_pki: CLIPKI, served_b64: Path, tmp_path: Path
) -> None:
    with serve_process(
        [*cli_pki.cert_args(), "--ech-key", cli_pki.served.path, "--http3"],
        tmp_path / "stderr.log",
        command=ech_command,
    ) as server:
        status, report = probe(ech_command, cli_pki, server.port, "--quic")
    assert status == 0
    check_report(report, "quic")
    not_applicable = {
        c["id"] for c in report["checks"] if c["result"] == "not_applicable"
    }
    assert not_applicable == {"accept-session-id"}  # RFC 9001 §8.4


def test_probe_table_and_only(
    ech_command: list[str], cli_pki: CLIPKI, served_b64: Path, tmp_path: Path
) -> None:
    """The human table, and ``--only`` with a prefix."""
    with serve_process(
        [*cli_pki.cert_args(), "--ech-key", cli_pki.served.path],
        tmp_path / "stderr.log",
        command=ech_command,
    ) as server:
        result = run_ech(
            ech_command,
            "probe",
            f"127.0.0.1:{server.port}",
            "--sni",
            HIDDEN_NAME,
            "--ech-config-list",
            f"@{served_b64}",
            "--ca",
            cli_pki.ca,
            "--only",
            "hrr",
            "accept",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ech probe 127.0.0.1:{server.port} over tcp")
    rows = [line.split()[1] for line in lines if line.startswith("pass ")]
    assert rows[0] == "accept"
    assert {r for r in rows if r.startswith("hrr-")} >= {
        "hrr-confirmation",
        "hrr-accept",
    }
    assert "grease" not in rows
    assert "0 fail" in lines[-1]
    assert lines[-1].endswith("OK")


def test_probe_client_against_ech_connect(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    """Our client passes every client check; ``ech connect`` runs once per step."""
    port = free_port()
    argv = [
        *ech_command,
        "probe-client",
        "--listen",
        f"127.0.0.1:{port}",
        *cli_pki.cert_args(),
        "--ech-key",
        str(cli_pki.served.path),
        "--json",
        "--timeout",
        "10",
        "--grace",
        "2",
    ]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    first = lines.get(timeout=30)
    assert first.startswith(f"listening on 127.0.0.1:{port}"), first
    config_list = first.rsplit(" ", 1)[-1].strip()
    try:
        for _ in range(10):
            run_ech(
                ech_command,
                "connect",
                f"127.0.0.1:{port}",
                "--sni",
                HIDDEN_NAME,
                "--ech-config-list",
                config_list,
                "--ca",
                cli_pki.ca,
            )
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    report = json.loads(stdout)
    assert report["probe"] == "client"
    results = {c["id"]: c["result"] for c in report["checks"]}
    assert len(results) == 10
    assert set(results.values()) == {"pass"}, json.dumps(report, indent=2)
    assert process.returncode == 0


def test_probe_takes_the_configs_from_doh(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    """``--doh``: the configs come from the server's own HTTPS record (RFC 9848)."""
    ca = TestCA.create("probe doh CA")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.pem)
    # The DoH URL names 127.0.0.1: the public name's certificate covers it.
    public = ca.write(tmp_path, ca.issue(PUBLIC_NAME, "127.0.0.1"), "public")
    hidden = ca.write(tmp_path, ca.issue(HIDDEN_NAME), "hidden")
    with serve_process(
        [
            *(
                a
                for cert, key in (public, hidden)
                for a in ("--cert", cert, "--key", key)
            ),
            "--ech-key",
            cli_pki.served.path,
            "--doh",
            "/dns-query",
        ],
        tmp_path / "stderr.log",
        command=ech_command,
    ) as server:
        result = run_ech(
            ech_command,
            "probe",
            f"127.0.0.1:{server.port}",
            "--sni",
            HIDDEN_NAME,
            "--doh",
            f"https://127.0.0.1:{server.port}/dns-query",
            "--ca",
            ca_file,
            "--only",
            "accept",
            "--json",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ech_config_list"] == cli_pki.served.config_list
    assert report["checks"][0]["id"] == "accept"  # and the accept-* checks
    assert {c["result"] for c in report["checks"]} == {"pass"}
