"""Files for the ``ech serve``/``ech connect`` tests of TLS features, on disk.

:func:`make_files` writes a test CA (:mod:`tests.harness.pki`), leaves for
the public and hidden names, a client certificate, and an ECH key made with
``ech keygen``; :func:`connect_json` runs ``ech connect`` against them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.pki import TestPKI
from tests.harness.serve import ServeProcess, ech_keygen, run_ech

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
CLIENT_NAME = "client.example"


@dataclass(frozen=True)
class Files:
    """A CA, server and client leaves, an ECH key, all on disk."""

    directory: Path
    ca: Path
    public: tuple[Path, Path]
    hidden: tuple[Path, Path]
    client: tuple[Path, Path]
    ech_key: Path
    config_list: str

    def serve_args(self, *extra: str | Path) -> list[str | Path]:
        """``--cert/--key`` for both names, the ECH key, then ``extra``."""
        return [
            *("--cert", self.public[0], "--key", self.public[1]),
            *("--cert", self.hidden[0], "--key", self.hidden[1]),
            *("--ech-key", self.ech_key),
            *extra,
        ]


def make_files(directory: Path) -> Files:
    """A CA, leaves, a client certificate, an ECH key (config_id 7) in ``directory``."""
    pki = TestPKI.create(directory, "ech tls cli test CA")
    public = pki.leaf("public", PUBLIC_NAME)
    hidden = pki.leaf("hidden", HIDDEN_NAME)
    client = pki.write(pki.ca.issue(CLIENT_NAME, usage="client"), "client")
    ech_key = pki.directory / "ech.pem"
    configs = ech_keygen(PUBLIC_NAME, ech_key, "--config-id", "7")
    return Files(
        pki.directory,
        pki.ca_path,
        (public.cert_path, public.key_path),
        (hidden.cert_path, hidden.key_path),
        (client.cert_path, client.key_path),
        ech_key,
        configs.to_base64(),
    )


def connect_json(
    server: ServeProcess, files: Files, *args: str | Path
) -> tuple[int, dict[str, Any]]:
    """``ech connect`` to the hidden name with ECH, ``--json``: status and JSON."""
    result = run_ech(
        None, "connect", server.address, "--sni", HIDDEN_NAME, "--ca", files.ca,
        "--ech-config-list", files.config_list, "--json", *args,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report
