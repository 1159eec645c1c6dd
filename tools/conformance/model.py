"""Requirements, their citations and their code references, joined.

Kept apart from rendering so the tests can check the facts (unknown ids,
unresolvable references) without comparing text.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.conformance.citations import find_citations

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "docs" / "conformance" / "requirements.toml"
MATRIX = ROOT / "docs" / "conformance.rst"

#: MUST, SHOULD and MAY are requirements (RFC 2119 strength, MUST NOT and
#: SHOULD NOT included); NOTE marks the RFC's informational points and
#: design consequences, listed but never counted as gaps.
NORMATIVE = ("MUST", "SHOULD", "MAY")
LEVELS = (*NORMATIVE, "NOTE")


@dataclass(frozen=True)
class Requirement:
    """One requirement as ``requirements.toml`` states it."""

    id: str
    rfc: str
    section: str
    level: str
    statement: str
    code: tuple[str, ...] = ()
    not_applicable: str = ""

    @property
    def normative(self) -> bool:
        """A MUST, SHOULD or MAY that applies to us: untested means a gap."""
        return self.level in NORMATIVE and not self.not_applicable


@dataclass(frozen=True)
class NotDone:
    """Something we deliberately leave out, and why."""

    title: str
    why: str


@dataclass
class Matrix:
    """Everything the page shows, and everything the checks reject."""

    requirements: list[Requirement]
    not_done: list[NotDone]
    tests: dict[str, list[str]] = field(default_factory=dict)
    probes: dict[str, list[str]] = field(default_factory=dict)
    unknown_citations: list[str] = field(default_factory=list)
    unresolved_code: list[str] = field(default_factory=list)

    @property
    def gaps(self) -> list[Requirement]:
        """Normative requirements that apply and that no test cites."""
        return [r for r in self.requirements if r.normative and not self.tests[r.id]]


def _requirement(entry: Mapping[str, object]) -> Requirement:
    code = entry.get("code", ())
    if not isinstance(code, list | tuple) or not all(isinstance(c, str) for c in code):
        raise ValueError(f"{entry.get('id')}: code must be a list of dotted names")
    values = {
        key: entry.get(key, "")
        for key in ("id", "rfc", "section", "level", "statement", "not_applicable")
    }
    if not all(isinstance(v, str) for v in values.values()):
        raise ValueError(f"{entry.get('id')}: every field but code is a string")
    unknown = set(entry) - {*values, "code"}
    if unknown:
        raise ValueError(f"{entry.get('id')}: unknown fields {sorted(unknown)}")
    requirement = Requirement(code=tuple(code), **values)  # type: ignore[arg-type]
    if not (requirement.id and requirement.section and requirement.statement):
        raise ValueError(f"{entry}: id, section and statement are required")
    if requirement.level not in LEVELS:
        raise ValueError(f"{requirement.id}: level {requirement.level!r}")
    if requirement.rfc not in ("9849", "9848"):
        raise ValueError(f"{requirement.id}: rfc {requirement.rfc!r}")
    return requirement


def load_requirements(
    path: Path = REQUIREMENTS,
) -> tuple[list[Requirement], list[NotDone]]:
    """Parse and validate the requirements file (ids unique, fields known)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    requirements = [_requirement(e) for e in data.get("requirement", [])]
    ids = [r.id for r in requirements]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"repeated requirement ids: {repeated}")
    not_done = [NotDone(e["title"], e["why"]) for e in data.get("not_done", [])]
    return requirements, not_done


def resolve(dotted: str) -> bool:
    """Whether ``dotted`` names a module, or an attribute reached from one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def build(
    requirements: Iterable[Requirement] | None = None,
    not_done: Iterable[NotDone] | None = None,
    tests_root: Path = ROOT / "tests",
) -> Matrix:
    """Join the requirements with the tests' and the probes' citations."""
    if requirements is None or not_done is None:
        loaded, loaded_not_done = load_requirements()
        requirements = loaded if requirements is None else requirements
        not_done = loaded_not_done if not_done is None else not_done
    matrix = Matrix(list(requirements), list(not_done))
    known = {r.id for r in matrix.requirements}
    matrix.tests = {i: [] for i in known}
    matrix.probes = {i: [] for i in known}
    for test, ids in find_citations(tests_root, tests_root.parent).items():
        for i in ids:
            if i in known:
                matrix.tests[i].append(test)
            else:
                matrix.unknown_citations.append(f"{test} cites {i}")
    from tools.conformance.probes import probe_citations  # imports the probes

    for check, ids in probe_citations().items():
        for i in ids:
            if i in known:
                matrix.probes[i].append(check)
            else:
                matrix.unknown_citations.append(f"probe check {check} cites {i}")
    matrix.unresolved_code = [
        f"{r.id}: {dotted}"
        for r in matrix.requirements
        for dotted in r.code
        if not resolve(dotted)
    ]
    return matrix
