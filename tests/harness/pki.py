"""The one test PKI builder: a :class:`~ech.pki.TestCA` with its files on disk.

Tests that need certificates in memory only call :class:`ech.pki.TestCA`
directly. Tests that hand files to a subprocess (``ech serve``, Go, OpenSSL,
curl, NSS, BIND, browsers) use :class:`TestPKI`: it writes the CA
certificate once, then issues and writes leaves by name and key type
(:meth:`TestPKI.leaf`), and makes an NSS database trusting the CA when asked
(:meth:`TestPKI.nss_db`). Private keys are written with mode 0600.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ech.pki import KeyType, TestCA
from ech.tls.certificates import CertifiedKey

NSS_INSTALL = "`apt-get update && apt-get install -y libnss3-tools`"
NSS_NICKNAME = "ech-test-ca"
"""The nickname the test CA gets in NSS databases."""


@dataclass(frozen=True)
class Leaf:
    """A leaf certificate with its key, in memory and on disk."""

    certified: CertifiedKey
    cert_path: Path
    """The chain (leaf first) in PEM."""
    key_path: Path
    """The PKCS#8 private key in PEM, mode 0600."""

    def serve_args(self) -> list[str]:
        """``--cert CERT --key KEY`` as ``ech serve`` takes them."""
        return ["--cert", str(self.cert_path), "--key", str(self.key_path)]


def write_nss_db(
    directory: Path,
    ca_path: Path,
    *,
    certutil: str | None = None,
    nickname: str = NSS_NICKNAME,
) -> str:
    """An NSS ``sql:`` database in ``directory`` trusting ``ca_path`` for servers.

    Args:
        directory: where the database goes (created if missing).
        ca_path: the CA certificate (PEM) to trust (``C,,``).
        certutil: the ``certutil`` program; found on PATH when None.
        nickname: the CA's nickname in the database.

    Returns:
        The database's ``-d`` value (``sql:DIRECTORY``).

    Raises:
        FileNotFoundError: certutil is not installed (the message says how).
        AssertionError: certutil failed (with its output).
    """
    program = certutil if certutil is not None else shutil.which("certutil")
    if program is None:
        raise FileNotFoundError(f"certutil not found; install it with {NSS_INSTALL}")
    directory.mkdir(parents=True, exist_ok=True)
    db = f"sql:{directory}"
    trust = ("-n", nickname, "-t", "C,,", "-a", "-i", str(ca_path))
    for argv in (
        [program, "-N", "-d", db, "--empty-password"],
        [program, "-A", "-d", db, *trust],
    ):
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{result.stderr}")
    return db


@dataclass(frozen=True)
class TestPKI:
    """A test CA whose certificate and leaves are written into ``directory``."""

    __test__ = False  # not a pytest class

    ca: TestCA
    directory: Path
    ca_path: Path
    """The CA certificate in PEM: what clients trust."""

    @classmethod
    def create(
        cls,
        directory: Path,
        name: str = "ech test CA",
        *,
        key_type: KeyType = "p256",
        stem: str = "ca",
    ) -> TestPKI:
        """A new CA, its certificate written to ``directory/STEM.pem``."""
        return cls.of(TestCA.create(name, key_type), directory, stem=stem)

    @classmethod
    def of(cls, ca: TestCA, directory: Path, *, stem: str = "ca") -> TestPKI:
        """Files for an existing ``ca``: its certificate in ``directory/STEM.pem``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca_path = directory / f"{stem}.pem"
        ca_path.write_bytes(ca.pem)
        return cls(ca, directory, ca_path)

    def leaf(self, stem: str, *names: str, key_type: KeyType = "p256") -> Leaf:
        """Issue a leaf for DNS names or IP addresses, written as ``STEM.pem/.key``."""
        return self.write(self.ca.issue(*names, key_type=key_type), stem)

    def chained_leaf(self, stem: str, *names: str) -> Leaf:
        """A P-256 leaf issued by a fresh intermediate CA; the chain holds both.

        Only the root (:attr:`ca_path`) is trusted, so a peer must follow the
        chain (leaf, intermediate).
        """
        intermediate = self.ca.intermediate()
        leaf = intermediate.issue(*names)
        chain = CertifiedKey((*leaf.chain, intermediate.certificate), leaf.private_key)
        return self.write(chain, stem)

    def write(self, certified: CertifiedKey, stem: str) -> Leaf:
        """Write ``certified`` as ``STEM.pem`` (chain) and ``STEM.key`` (0600)."""
        cert_path, key_path = self.ca.write(self.directory, certified, stem)
        return Leaf(certified, cert_path, key_path)

    def nss_db(self, directory: Path, *, certutil: str | None = None) -> str:
        """An NSS database in ``directory`` trusting this CA; its ``-d`` value."""
        return write_nss_db(directory, self.ca_path, certutil=certutil)
