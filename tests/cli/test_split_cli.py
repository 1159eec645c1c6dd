"""``ech serve --backend`` and ``--backend-mode``: split mode from the command line.

The front end holds the ECH key and the public name's certificate; the
backend holds the hidden name's certificate and confirms ECH (RFC 9849
§3.1, §7.2). ``ech connect`` must end accepted, and the page it gets must
be the backend's, with the hidden name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import CLIPKI, HIDDEN_NAME
from tests.cli.test_cli import connect
from tests.harness.serve import free_port, serve_process


@pytest.mark.requirement("ECH-80", "ECH-88")
def test_serve_backend_relays_to_backend_mode_server(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    """ECH-80, ECH-88: forwarded inner hello, confirmed by the backend."""
    backend_args: list[str | os.PathLike[str]] = [
        "--cert", cli_pki.hidden_cert, "--key", cli_pki.hidden_key, "--backend-mode",
    ]  # fmt: skip
    with serve_process(
        backend_args, tmp_path / "backend.log", port=free_port(), command=ech_command
    ) as back:
        front_args: list[str | os.PathLike[str]] = [
            "--cert", cli_pki.public_cert, "--key", cli_pki.public_key,
            "--ech-key", cli_pki.served.path,
            "--backend", f"{HIDDEN_NAME}={back.address}",
        ]  # fmt: skip
        with serve_process(
            front_args, tmp_path / "front.log", port=free_port(), command=ech_command
        ) as front:
            status, report = connect(
                ech_command,
                front,
                cli_pki.ca,
                "--ech-config-list",
                cli_pki.served.config_list,
            )
        front_log = (tmp_path / "front.log").read_text()
    assert status == 0, report
    assert report["ech_status"] == "accepted"
    assert report["server_name"] == HIDDEN_NAME
    # The page comes from the backend, which terminated TLS for the hidden name.
    assert report["server_view"]["server_name"] == HIDDEN_NAME
    assert report["server_view"]["ech_status"] == "accepted"
    assert '"outcome": "forwarded"' in front_log


def test_serve_rejects_malformed_backend(
    ech_command: list[str], cli_pki: CLIPKI
) -> None:
    from tests.harness.serve import run_ech

    result = run_ech(
        ech_command, "serve", "--listen", "127.0.0.1:0", *cli_pki.cert_args(),
        "--backend", "no-address",
    )  # fmt: skip
    assert result.returncode == 2
    assert "NAME=HOST:PORT" in result.stderr
