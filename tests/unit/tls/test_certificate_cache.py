"""The client keeps parsed server certificates, and checks them in full each time.

A parsed certificate is shared between handshakes (as Go's ``certCache``);
the path, the name, the validity period and CertificateVerify are not.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization

from ech.pki import TestCA
from ech.tls.certificates import verify_client_chain, verify_server_chain
from ech.tls.errors import BadCertificate

NAME = "cache.example"
DAY = 86400.0


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create("cache test CA")


def der_chain(ca: TestCA, *names: str) -> list[bytes]:
    return list(ca.issue(*names).chain_der)


def test_a_chain_seen_again_is_parsed_once(ca: TestCA) -> None:
    chain = der_chain(ca, NAME)
    now = time.time()
    first = verify_server_chain(chain, NAME, (ca.certificate,), now)
    again = verify_server_chain(
        [bytes(bytearray(chain[0]))], NAME, (ca.certificate,), now
    )
    assert again is first


def test_a_cached_chain_is_still_checked_for_the_name(ca: TestCA) -> None:
    chain = der_chain(ca, NAME)
    now = time.time()
    verify_server_chain(chain, NAME, (ca.certificate,), now)
    with pytest.raises(BadCertificate, match="verification failed"):
        verify_server_chain(chain, "other.example", (ca.certificate,), now)


def test_a_cached_chain_is_still_checked_for_validity_and_trust(ca: TestCA) -> None:
    chain = der_chain(ca, NAME)
    now = time.time()
    verify_server_chain(chain, NAME, (ca.certificate,), now)
    with pytest.raises(BadCertificate, match="verification failed"):
        verify_server_chain(chain, NAME, (ca.certificate,), now + 365 * DAY)
    with pytest.raises(BadCertificate, match="verification failed"):
        verify_server_chain(chain, NAME, (ca.certificate,), now - 2 * DAY)
    stranger = TestCA.create("another CA")
    with pytest.raises(BadCertificate, match="verification failed"):
        verify_server_chain(chain, NAME, (stranger.certificate,), now)


def test_large_certificates_are_not_kept(ca: TestCA) -> None:
    names = [NAME, *(f"n{i:04d}.padding.example" for i in range(400))]
    chain = der_chain(ca, *names)
    assert len(chain[0]) > 8192
    now = time.time()
    first = verify_server_chain(chain, NAME, (ca.certificate,), now)
    again = verify_server_chain(chain, NAME, (ca.certificate,), now)
    assert again is not first
    assert again == first


def test_unparsable_certificates_fail_every_time(ca: TestCA) -> None:
    garbage = [b"\x30\x03\x02\x01\x00"]
    for _ in range(2):
        with pytest.raises(BadCertificate, match="does not parse"):
            verify_server_chain(garbage, NAME, (ca.certificate,), time.time())


def test_a_server_parses_client_certificates_afresh(ca: TestCA) -> None:
    leaf = ca.issue("client.example", usage="client")
    chain = list(leaf.chain_der)
    now = time.time()
    first = verify_client_chain(chain, (ca.certificate,), now)[0]
    again = verify_client_chain(chain, (ca.certificate,), now)[0]
    assert again is not first
    assert again.public_bytes(serialization.Encoding.DER) == chain[0]
