"""Fixtures of the probe tests: a PKI on disk and one ECH key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ech.keys import ECHKey
from tests.probe.servers import ProbePKI, make_key, make_pki


@pytest.fixture(scope="session")
def probe_pki(tmp_path_factory: pytest.TempPathFactory) -> ProbePKI:
    return make_pki(Path(tmp_path_factory.mktemp("probe-pki")))


@pytest.fixture(scope="session")
def probe_key() -> ECHKey:
    return make_key(config_id=7)
