"""Shared pytest configuration: hypothesis profiles and a throwaway PKI.

Hypothesis profiles: ``dev`` (default, fast), ``ci`` (more examples,
derandomized) and ``long`` (``HYPOTHESIS_LONG_EXAMPLES`` per test, 30,000 by
default: the million-example codec run of ``make fuzz``), chosen with the
``HYPOTHESIS_PROFILE`` environment variable.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import ech
from ech.pki import TestCA
from tests.helpers import SERVER_NAME
from tools.conformance import load_requirements

settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("HYPOTHESIS_LONG_EXAMPLES", "30000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Refuse unknown requirement ids; leave ``slow`` tests out.

    ``slow`` tests run only when ``-m`` names them (``make fuzz`` does).
    Deselected, not skipped: the normal suite stays within its time budget
    and reports no skips. A ``requirement`` marker naming an id that
    ``docs/conformance/requirements.toml`` does not define stops the run
    before any test does (tests/test_conformance.py checks the same without
    collecting).
    """
    known = {r.id for r in load_requirements()[0]}
    unknown = [
        f"{item.nodeid} cites {cited!r}"
        for item in items
        for marker in item.iter_markers("requirement")
        for cited in marker.args
        if cited not in known
    ]
    if unknown:
        raise pytest.UsageError("unknown requirement ids: " + "; ".join(unknown))
    if "slow" in (config.option.markexpr or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def ca() -> TestCA:
    """A session-wide test CA (P-256)."""
    return TestCA.create()


@pytest.fixture(scope="session")
def leaf(ca: TestCA) -> ech.CertifiedKey:
    """A P-256 leaf for ``example.test``."""
    return ca.issue(SERVER_NAME)


@pytest.fixture(scope="session")
def ed25519_leaf(ca: TestCA) -> ech.CertifiedKey:
    """An Ed25519 leaf for ``example.test`` (deterministic signatures)."""
    return ca.issue(SERVER_NAME, key_type="ed25519")


@pytest.fixture(scope="session")
def other_ca() -> TestCA:
    """A CA the clients do not trust."""
    return TestCA.create("untrusted CA")


@pytest.fixture(scope="session")
def client_config(ca: TestCA) -> ech.ClientConfig:
    """A client trusting :func:`ca` (frozen, so shared; vary with ``replace``)."""
    return ech.ClientConfig(trust_store=(ca.certificate,))


@pytest.fixture(scope="session")
def server_config(leaf: ech.CertifiedKey) -> ech.ServerConfig:
    """A server presenting :func:`leaf` (frozen, so shared)."""
    return ech.ServerConfig(certificates=(leaf,))
