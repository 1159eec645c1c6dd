"""The conformance matrix cannot drift from the requirements, tests and code.

``docs/conformance.rst`` is generated (``python -m tools.conformance``) from
``docs/conformance/requirements.toml``, the tests' ``requirement`` markers
and the probes' checks. These tests fail when the committed page differs
from what the generator writes now, when anything cites an id the file does
not define, and when a code reference names nothing. Gaps (requirements no
test cites) are shown on the page, not failed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.conformance import build, load_requirements
from tools.conformance.citations import file_citations
from tools.conformance.model import MATRIX, Matrix, resolve
from tools.conformance.render import render


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return build()


def test_every_citation_names_a_known_requirement(matrix: Matrix) -> None:
    assert matrix.unknown_citations == []


def test_every_code_reference_resolves(matrix: Matrix) -> None:
    assert matrix.unresolved_code == []


def test_the_committed_matrix_is_current(matrix: Matrix) -> None:
    assert MATRIX.read_text(encoding="utf-8") == render(matrix), (
        "docs/conformance.rst is stale: run python -m tools.conformance"
    )


def test_ids_are_well_formed_and_unique() -> None:
    requirements, not_done = load_requirements()
    ids = [r.id for r in requirements]
    assert all(re.fullmatch(r"ECH-[1-9][0-9]*", i) for i in ids), ids
    assert len(ids) == len(set(ids))
    assert not_done


def test_a_citation_of_an_unknown_id_is_reported(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        "import pytest\n\n"
        "pytestmark = pytest.mark.requirement('ECH-1')\n\n"
        "class TestA:\n"
        "    @pytest.mark.requirement('ECH-9999')\n"
        "    def test_b(self) -> None: ...\n"
    )
    assert file_citations(tests / "test_x.py", "tests/test_x.py") == {
        "tests/test_x.py::TestA::test_b": ["ECH-1", "ECH-9999"]
    }
    built = build(tests_root=tests)
    assert "tests/test_x.py::TestA::test_b cites ECH-9999" in built.unknown_citations
    assert [r.id for r in built.requirements if not built.tests[r.id]][:2] == [
        "ECH-2",
        "ECH-3",
    ]


def test_a_non_literal_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_y.py"
    path.write_text(
        "import pytest\nID = 'ECH-1'\n\n"
        "@pytest.mark.requirement(ID)\ndef test_c() -> None: ...\n"
    )
    with pytest.raises(ValueError, match="string literals"):
        file_citations(path, "test_y.py")


def test_resolve_tells_real_names_from_missing_ones() -> None:
    assert resolve("ech.inner.decode_client_hello_inner")
    assert resolve("ech.client.handshake.ClientHandshake._decide_ech")
    assert resolve("ech.server.anti_replay")
    assert not resolve("ech.inner.no_such_function")
    assert not resolve("ech.no_such_module.f")
