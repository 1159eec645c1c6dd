"""The conformance matrix: RFC 9849 and RFC 9848 requirements, code, tests.

``docs/conformance/requirements.toml`` states each requirement in our words
with the code that meets it; tests cite requirements with
``@pytest.mark.requirement("ECH-31")``. :func:`build` joins the three and
:mod:`tools.conformance.render` writes ``docs/conformance.rst``, so the
matrix a reader cites is regenerated, never edited, and
``tests/test_conformance.py`` fails when it is stale, when a test cites an
unknown id, or when a code reference names nothing.
"""

from __future__ import annotations

from tools.conformance.model import (
    LEVELS,
    NORMATIVE,
    Matrix,
    NotDone,
    Requirement,
    build,
    load_requirements,
)

__all__ = [
    "LEVELS",
    "NORMATIVE",
    "Matrix",
    "NotDone",
    "Requirement",
    "build",
    "load_requirements",
]
