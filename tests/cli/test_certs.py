"""``ech certs``: a throwaway CA and certificates, and the commands to try next."""

from __future__ import annotations

import ipaddress
import shlex
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ech.cli.certs import next_commands
from ech.pki import certificate_files, write_certificates
from tests.cli.conftest import HIDDEN_NAME, PUBLIC_NAME, shell_lines
from tests.harness.serve import run_ech


def verifies(ca: Path, cert: Path, name: str) -> bool:
    """Whether ``cert`` chains to ``ca`` and is valid for server ``name``."""
    store = Store(x509.load_pem_x509_certificates(ca.read_bytes()))
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(
            ipaddress.ip_address(name)
        )
    except ValueError:
        subject = x509.DNSName(name)
    verifier = PolicyBuilder().store(store).build_server_verifier(subject)
    (leaf,) = x509.load_pem_x509_certificates(cert.read_bytes())
    try:
        verifier.verify(leaf, [])
    except VerificationError:
        return False
    return True


def test_certs_writes_a_ca_and_a_certificate_per_name(
    ech_command: list[str], tmp_path: Path
) -> None:
    directory = tmp_path / "new" / "pki"  # made, parents too
    result = run_ech(ech_command, "certs", directory)
    assert result.returncode == 0, result.stderr
    files = certificate_files(directory)  # the defaults
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        p.name for p in files.paths
    )
    for issued in (files.public, *files.names):
        assert stat.S_IMODE(issued.key.stat().st_mode) == 0o600
    assert verifies(files.ca, files.public.certificate, PUBLIC_NAME)
    for loopback in ("127.0.0.1", "localhost", "::1"):  # DoH at the address
        assert verifies(files.ca, files.public.certificate, loopback)
    (hidden,) = files.names
    assert hidden.name == HIDDEN_NAME
    assert verifies(files.ca, hidden.certificate, HIDDEN_NAME)
    assert not verifies(files.ca, hidden.certificate, PUBLIC_NAME)
    assert not verifies(files.ca, hidden.certificate, "127.0.0.1")
    assert "PRIVATE KEY" not in result.stdout + result.stderr

    # The next commands, with the files' real names, however ech was run.
    printed = shell_lines(result.stdout)
    for command in next_commands(files, program="ECH"):
        expected = shlex.split(command)[1:]
        assert any(shlex.split(line)[-len(expected) :] == expected for line in printed)


def test_certs_refuses_to_overwrite_without_force(
    ech_command: list[str], tmp_path: Path
) -> None:
    first = run_ech(ech_command, "certs", tmp_path)
    assert first.returncode == 0, first.stderr
    ca = (tmp_path / "ca.pem").read_bytes()
    again = run_ech(ech_command, "certs", tmp_path)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert str(tmp_path / "ca.pem") in again.stderr
    assert "--force" in again.stderr
    assert (tmp_path / "ca.pem").read_bytes() == ca
    forced = run_ech(ech_command, "certs", tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "ca.pem").read_bytes() != ca


def test_certs_names(ech_command: list[str], tmp_path: Path) -> None:
    result = run_ech(
        ech_command, "certs", tmp_path, "--public-name", "cover.example.net",
        "--name", "a.example", "--name", "b.example",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = certificate_files(tmp_path, "cover.example.net", ["a.example", "b.example"])
    assert all(path.exists() for path in files.paths)
    assert verifies(files.ca, files.public.certificate, "127.0.0.1")
    assert [f.name for f in files.names] == ["a.example", "b.example"]
    assert not (tmp_path / f"{PUBLIC_NAME}.pem").exists()
    assert "--sni a.example" in result.stdout


@pytest.mark.parametrize("name", ["ca", "bad..name"])
def test_certs_refuses_names_it_cannot_write(
    ech_command: list[str], tmp_path: Path, name: str
) -> None:
    result = run_ech(ech_command, "certs", tmp_path, "--name", name)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert name in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_written_when_one_file_exists(tmp_path: Path) -> None:
    """The check comes first: no half-replaced set (a new CA, old leaves)."""
    existing = tmp_path / f"{HIDDEN_NAME}.key"
    existing.write_text("mine\n")
    with pytest.raises(FileExistsError, match=str(existing)):
        write_certificates(tmp_path)
    assert list(tmp_path.iterdir()) == [existing]
    assert existing.read_text() == "mine\n"
