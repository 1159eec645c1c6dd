"""TLS 1.3 completeness against OpenSSL 3 (Python's ``ssl``), both roles.

What this suite covers beyond test_openssl_interop.py:

* the groups OpenSSL 3 offers in TLS 1.3 beside the common ones: x448,
  secp521r1 and ffdhe2048..ffdhe8192, picked with ``set_ecdh_curve`` (which
  Python 3.11 implements with ``SSL_CTX_set1_groups`` on OpenSSL 3, so the
  finite-field groups work too);
* certificates with P-521, Ed448 and RSASSA-PSS keys (CertificateVerify
  with ecdsa_secp521r1_sha512, ed448 and rsa_pss_pss_sha256);
* client certificates, each way, and the alerts a refusal sends;
* psk_ke resumption (with OpenSSL's SSL_OP_ALLOW_NO_DHE_KEX);
* TLS_AES_128_CCM_SHA256 and TLS_AES_128_CCM_8_SHA256. Python 3.11's
  ``ssl`` has no ``set_ciphersuites`` and OpenSSL leaves CCM off, so the
  OpenSSL peer runs in a subprocess started with ``OPENSSL_CONF`` naming
  those suites (``interop/openssl_peer.py``): OpenSSL reads its
  configuration once per process and applies ``system_default`` to every
  new context.

OpenSSL cannot do 0-RTT through the ``ssl`` module; that is tested with NSS.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import ech
from ech.errors import CertificateRequired, UnknownCA
from ech.pki import KeyType, TestCA
from ech.tls.signatures import sign, verify
from interop.openssl_peer import openssl_conf
from tests.helpers import rsa_pss_leaf
from tests.integration.conftest import (
    IO_TIMEOUT,
    PKI,
    SERVER_NAME,
    ServedConnection,
    ThreadedServer,
    echo_with_ours,
)
from tests.integration.test_openssl_interop import (
    handshake_of,
    our_client_config,
    our_echo,
    ssl_client,
    ssl_client_context,
    ssl_echo_server,
    ssl_server_context,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

Serve = Callable[[Callable[[socket.socket], Any]], ThreadedServer[Any]]
G = ech.NamedGroup
S = ech.SignatureScheme
CS = ech.CipherSuite

#: The groups beyond test_openssl_interop.py's, with OpenSSL's names.
NEW_GROUPS: dict[ech.NamedGroup, str] = {
    G.X448: "X448",
    G.SECP521R1: "secp521r1",
    G.FFDHE2048: "ffdhe2048",
    G.FFDHE3072: "ffdhe3072",
    G.FFDHE4096: "ffdhe4096",
    G.FFDHE6144: "ffdhe6144",
    G.FFDHE8192: "ffdhe8192",
}
ALL_GROUPS = (*NEW_GROUPS, G.X25519, G.SECP256R1, G.SECP384R1)


@dataclass(frozen=True)
class Leaves:
    """Leaves beyond the session PKI's, on disk for OpenSSL."""

    server: dict[str, tuple[ech.CertifiedKey, Path, Path]]
    client: tuple[ech.CertifiedKey, Path, Path]
    stranger_client: tuple[ech.CertifiedKey, Path, Path]


@pytest.fixture(scope="module")
def leaves(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Leaves:
    directory = tmp_path_factory.mktemp("tls13-leaves")

    def written(
        certified: ech.CertifiedKey, stem: str
    ) -> tuple[ech.CertifiedKey, Path, Path]:
        cert, key = pki.ca.write(directory, certified, stem)
        return certified, cert, key

    server: dict[str, tuple[ech.CertifiedKey, Path, Path]] = {}
    key_types: tuple[KeyType, ...] = ("p521", "ed448")
    for kt in key_types:
        server[kt] = written(pki.ca.issue(SERVER_NAME, key_type=kt), kt)
    # Written by openssl itself: cryptography would re-encode the key as
    # rsaEncryption, which OpenSSL then refuses to pair with the certificate.
    pss = rsa_pss_leaf(pki.ca, SERVER_NAME, directory)
    server["rsa-pss"] = (pss, directory / "pss.pem", directory / "pss.key")
    client = written(pki.ca.issue("client.test", usage="client"), "client")
    stranger = TestCA.create("stranger CA").issue("client.test", usage="client")
    return Leaves(server, client, written(stranger, "stranger"))


# -- groups ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", list(NEW_GROUPS), ids=str)
def test_client_group_with_openssl_server(pki: PKI, serve: Serve, group: G) -> None:
    server = serve(
        ssl_echo_server(ssl_server_context(pki.default, curve=NEW_GROUPS[group]))
    )
    config = our_client_config(pki, groups=(group,), key_share_groups=(group,))
    hs = handshake_of(our_echo(server.port, config, b"group"))
    assert (hs.group, hs.hello_retry) == (group, False)
    assert server.result().received == b"group"


@pytest.mark.parametrize("group", list(NEW_GROUPS), ids=str)
def test_server_group_with_openssl_client(pki: PKI, serve: Serve, group: G) -> None:
    """OpenSSL's client sends its share for the one group it is given."""
    config = ech.ServerConfig(certificates=(pki.default.certified,), groups=ALL_GROUPS)
    server = serve(echo_with_ours(config))
    ctx = ssl_client_context(pki, curve=NEW_GROUPS[group])
    assert ssl_client(server.port, ctx, b"group").received == b"group"
    ours: ServedConnection = server.result()
    assert (ours.handshake.group, ours.handshake.hello_retry) == (group, False)


# -- certificate keys and CertificateVerify schemes -----------------------------------

SCHEMES = {
    "p521": S.ECDSA_SECP521R1_SHA512,
    "ed448": S.ED448,
    "rsa-pss": S.RSA_PSS_PSS_SHA256,
}


@pytest.mark.parametrize("key_type", list(SCHEMES))
def test_client_verifies_openssl_server_key(
    pki: PKI,
    serve: Serve,
    leaves: Leaves,
    key_type: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []

    def spy(certificate: Any, scheme: int, signature: bytes, content: bytes) -> None:
        seen.append(scheme)
        verify(certificate, scheme, signature, content)

    monkeypatch.setattr("ech.client.handshake.verify", spy)
    _, cert, key = leaves.server[key_type]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    server = serve(ssl_echo_server(ctx))
    our_echo(server.port, our_client_config(pki), b"key")
    assert server.result().received == b"key"
    assert seen == [SCHEMES[key_type]]


@pytest.mark.parametrize("key_type", list(SCHEMES))
def test_openssl_client_verifies_our_key(
    pki: PKI, serve: Serve, leaves: Leaves, key_type: str
) -> None:
    certified, _, _ = leaves.server[key_type]
    schemes: list[int] = []

    def signer(key: Any, scheme: int, content: bytes) -> bytes:
        schemes.append(scheme)
        return sign(key, scheme, content)

    config = ech.ServerConfig(certificates=(certified,), signer=signer)
    server = serve(echo_with_ours(config))
    assert ssl_client(server.port, ssl_client_context(pki), b"k").received == b"k"
    assert server.result().received == b"k"
    assert schemes == [SCHEMES[key_type]]


# -- client certificates --------------------------------------------------------------


def _subject_handler(ctx: ssl.SSLContext) -> Callable[[socket.socket], str]:
    """OpenSSL's server: echo once, report the client certificate's CN."""

    def handler(conn: socket.socket) -> str:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            while data := tls.recv(65536):
                tls.sendall(data)
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).subject.rfc4514_string()

    return handler


def test_our_client_certificate_to_openssl(
    pki: PKI, serve: Serve, leaves: Leaves
) -> None:
    ctx = ssl_server_context(
        pki.default, client_auth=ssl.CERT_REQUIRED, client_ca=pki.ca_path
    )
    server = serve(_subject_handler(ctx))
    certified, _, _ = leaves.client
    config = our_client_config(pki, client_certificate=certified)
    our_echo(server.port, config, b"me")
    assert server.result() == "CN=client.test"


def _our_auth_server(pki: PKI) -> ech.ServerConfig:
    return ech.ServerConfig(
        certificates=(pki.default.certified,),
        client_ca=(pki.ca.certificate,),
        require_client_certificate=True,
    )


def _openssl_client(pki: PKI, port: int, cert: tuple[Path, Path] | None) -> bytes:
    ctx = ssl_client_context(pki)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        tls.sendall(b"hello")
        data = tls.recv(65536)  # the server's verdict arrives after our Finished
        tls.unwrap()
        return data


def test_openssl_client_certificate_to_our_server(
    pki: PKI, serve: Serve, leaves: Leaves
) -> None:
    server = serve(echo_with_ours(_our_auth_server(pki)))
    _, cert, key = leaves.client
    assert _openssl_client(pki, server.port, (cert, key)) == b"hello"
    ours: ServedConnection = server.result()
    assert ours.handshake.client_certificate_subject == "CN=client.test"


def test_openssl_client_without_certificate_gets_certificate_required(
    pki: PKI, serve: Serve
) -> None:
    """RFC 8446 §4.4.2.4 and alert 116, which OpenSSL names."""
    server = serve(echo_with_ours(_our_auth_server(pki)))
    with pytest.raises(ssl.SSLError, match=r"(?i)certificate.required"):
        _openssl_client(pki, server.port, None)
    assert isinstance(server.outcome(), CertificateRequired)


def test_openssl_client_certificate_from_unknown_ca(
    pki: PKI, serve: Serve, leaves: Leaves
) -> None:
    server = serve(echo_with_ours(_our_auth_server(pki)))
    _, cert, key = leaves.stranger_client
    with pytest.raises(ssl.SSLError, match=r"(?i)unknown.ca"):
        _openssl_client(pki, server.port, (cert, key))
    assert isinstance(server.outcome(), UnknownCA)


# -- CCM, through OPENSSL_CONF in a subprocess ----------------------------------------

CCM = {
    CS.TLS_AES_128_CCM_SHA256: "TLS_AES_128_CCM_SHA256",
    CS.TLS_AES_128_CCM_8_SHA256: "TLS_AES_128_CCM_8_SHA256",
}


def _peer_env(tmp_path: Path, suite: str) -> dict[str, str]:
    conf = openssl_conf(tmp_path / "openssl.cnf", ciphersuites=suite)
    return {**os.environ, "OPENSSL_CONF": str(conf)}


@pytest.fixture
def openssl_server(
    tmp_path: Path, pki: PKI
) -> Iterator[Callable[[str], tuple[int, subprocess.Popen[str]]]]:
    started: list[subprocess.Popen[str]] = []

    def start(suite: str) -> tuple[int, subprocess.Popen[str]]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interop.openssl_peer",
                "server",
                "--cert",
                str(pki.default.cert_path),
                "--key",
                str(pki.default.key_path),
            ],
            env=_peer_env(tmp_path, suite),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), (
            line,
            proc.stderr.read() if proc.stderr else "",
        )
        return int(line.split()[1]), proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("suite", list(CCM), ids=str)
def test_ccm_our_client_openssl_server(
    pki: PKI,
    suite: CS,
    openssl_server: Callable[[str], tuple[int, subprocess.Popen[str]]],
) -> None:
    port, proc = openssl_server(CCM[suite])
    config = our_client_config(pki, cipher_suites=(suite,), allow_ccm_8=True)
    hs = handshake_of(our_echo(port, config, b"ccm"))
    assert hs.cipher_suite == suite
    assert proc.stdout is not None
    report = json.loads(proc.stdout.readline())
    assert report == {
        "cipher": CCM[suite],
        "version": "TLSv1.3",
        "received": b"ccm".hex(),
    }


@pytest.mark.parametrize("suite", list(CCM), ids=str)
def test_ccm_openssl_client_our_server(
    pki: PKI, serve: Serve, tmp_path: Path, suite: CS
) -> None:
    config = ech.ServerConfig(
        certificates=(pki.default.certified,), cipher_suites=(suite,), allow_ccm_8=True
    )
    server = serve(echo_with_ours(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "interop.openssl_peer",
            "client",
            "--port",
            str(server.port),
            "--ca",
            str(pki.ca_path),
            "--sni",
            SERVER_NAME,
            "--send",
            b"ccm!".hex(),
        ],
        env=_peer_env(tmp_path, CCM[suite]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cipher"] == CCM[suite]
    assert report["echoed"] == b"ccm!".hex()
    ours: ServedConnection = server.result()
    assert ours.handshake.cipher_suite == suite


# -- psk_ke (RFC 8446 §4.2.9) ---------------------------------------------------------

#: OpenSSL's SSL_OP_ALLOW_NO_DHE_KEX (bit 10), which Python 3.11 does not name:
#: it lets OpenSSL resume with psk_ke, as server or client.
OP_ALLOW_NO_DHE_KEX = 1 << 10
KE = ech.tls.enums.PskKeyExchangeMode.PSK_KE
DHE = ech.tls.enums.PskKeyExchangeMode.PSK_DHE_KE


def test_client_psk_ke_with_openssl_server(pki: PKI, serve: Serve) -> None:
    """Offering psk_ke only, we resume without (EC)DHE: no group."""
    ctx = ssl_server_context(pki.default)
    ctx.options |= OP_ALLOW_NO_DHE_KEX
    server = serve(ssl_echo_server(ctx))
    config = our_client_config(pki, psk_key_exchange_modes=(KE, DHE))
    first = our_echo(server.port, config, b"full")
    (ticket, *_) = first.session_tickets
    ke_only = our_client_config(pki, psk_key_exchange_modes=(KE,))
    hs = handshake_of(our_echo(server.port, ke_only, b"ke", session=ticket))
    assert (hs.resumed, hs.group) == (True, None)
    assert server.result().session_reused is False
    assert server.result().session_reused is True


def test_server_psk_ke_with_openssl_client(pki: PKI, serve: Serve) -> None:
    """OpenSSL's client lists psk_ke too; our server prefers it when told to."""
    config = ech.ServerConfig(
        certificates=(pki.default.certified,), psk_key_exchange_modes=(KE, DHE)
    )
    server = serve(echo_with_ours(config))
    ctx = ssl_client_context(pki)
    ctx.options |= OP_ALLOW_NO_DHE_KEX
    first = ssl_client(server.port, ctx, b"full")
    second = ssl_client(server.port, ctx, b"ke", session=first.session)
    assert second.session_reused
    full: ServedConnection = server.result()
    resumed: ServedConnection = server.result()
    assert full.handshake.group is not None
    assert (resumed.handshake.resumed, resumed.handshake.group) == (True, None)
