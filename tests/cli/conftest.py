"""Fixtures for the ``ech`` command-line tests: the command runs as a subprocess.

* :func:`ech_command`: how to start ``ech`` (the venv's console script, else
  ``python -m ech``).
* :func:`cli_pki`: a throwaway CA, leaves for the public and hidden names, a
  CA the client must not trust, and ECH keys made with ``ech keygen``.
* :func:`server`: ``ech serve`` on a free loopback port for the module
  (:func:`tests.harness.serve.serve_process`, which the tests also use).
* :func:`tls_files`: a CA, leaves, a client certificate and an ECH key for
  the TLS feature tests (:mod:`tests.cli.tls_files`), per module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.tls_files import Files, make_files
from tests.harness.pki import TestPKI
from tests.harness.serve import (
    ServeProcess,
    ech_keygen,
    find_ech_command,
    free_port,
    serve_process,
)

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
STOP_TIMEOUT = 5.0

# Config ids are fixed so the keys a test tells apart never share one.
SERVED_CONFIG_ID = 1
STALE_CONFIG_ID = 2
SECOND_CONFIG_ID = 3


@pytest.fixture(scope="session")
def ech_command() -> list[str]:
    """The argv prefix that runs the ``ech`` command."""
    return find_ech_command()


@dataclass(frozen=True)
class ECHKeyFile:
    """An ``ech keygen`` output: the PEM file and the printed ECHConfigList."""

    path: Path
    config_list: str


@dataclass(frozen=True)
class CLIPKI:
    """Files for ``ech serve`` and ``ech connect``."""

    directory: Path
    ca: Path
    other_ca: Path
    public_cert: Path
    public_key: Path
    hidden_cert: Path
    hidden_key: Path
    served: ECHKeyFile
    stale: ECHKeyFile
    second: ECHKeyFile

    def cert_args(self) -> list[str]:
        """``--cert/--key`` for both the public and the hidden name."""
        return [
            "--cert",
            str(self.public_cert),
            "--key",
            str(self.public_key),
            "--cert",
            str(self.hidden_cert),
            "--key",
            str(self.hidden_key),
        ]


def keygen(path: Path, config_id: int) -> ECHKeyFile:
    """Make an ECH key for :data:`PUBLIC_NAME` with ``ech keygen``."""
    configs = ech_keygen(PUBLIC_NAME, path, "--config-id", str(config_id))
    return ECHKeyFile(path, configs.to_base64())


@pytest.fixture(scope="session")
def cli_pki(tmp_path_factory: pytest.TempPathFactory) -> CLIPKI:
    """A CA, two leaves, an untrusted CA, and three ECH keys, as files."""
    pki = TestPKI.create(tmp_path_factory.mktemp("cli-pki"), "ech cli test CA")
    directory = pki.directory
    other = TestPKI.create(directory, "ech cli untrusted CA", stem="other-ca")
    public = pki.leaf("public", PUBLIC_NAME)
    hidden = pki.leaf("hidden", HIDDEN_NAME)
    return CLIPKI(
        directory=directory,
        ca=pki.ca_path,
        other_ca=other.ca_path,
        public_cert=public.cert_path,
        public_key=public.key_path,
        hidden_cert=hidden.cert_path,
        hidden_key=hidden.key_path,
        served=keygen(directory / "served.pem", SERVED_CONFIG_ID),
        stale=keygen(directory / "stale.pem", STALE_CONFIG_ID),
        second=keygen(directory / "second.pem", SECOND_CONFIG_ID),
    )


@pytest.fixture(scope="module")
def server(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    """``ech serve`` for both names, with the :attr:`CLIPKI.served` ECH key."""
    stderr_path = tmp_path_factory.mktemp("serve") / "stderr.log"
    with serve_process(
        [*cli_pki.cert_args(), "--ech-key", cli_pki.served.path],
        stderr_path,
        port=free_port(),
        command=ech_command,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """:func:`tests.cli.tls_files.make_files` in a fresh directory."""
    return make_files(tmp_path_factory.mktemp("tls-cli"))


def shell_lines(text: str) -> list[str]:
    """Shell command lines: backslash continuations joined, blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [line.strip() for line in joined.splitlines() if line.strip()]
