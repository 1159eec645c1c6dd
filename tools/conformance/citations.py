"""The tests' citations, read from the source without importing the tests.

A test cites requirements with ``@pytest.mark.requirement("ECH-31", ...)``
on its function or class, or with a module-level ``pytestmark``. Reading
the syntax tree keeps the generator fast and free of the tests' imports
(peers, fixtures), and sees exactly what pytest will see.
"""

from __future__ import annotations

import ast
from pathlib import Path

MARKER = "requirement"


def _marker_ids(node: ast.expr) -> list[str] | None:
    """The ids of ``pytest.mark.requirement(...)``, or None for other nodes."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    func = node.func
    if not (
        func.attr == MARKER
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "mark"
    ):
        return None
    ids = []
    for arg in node.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise ValueError(
                f"line {node.lineno}: requirement ids must be string literals"
            )
        ids.append(arg.value)
    return ids


def _marks(nodes: list[ast.expr]) -> list[str]:
    """Ids cited by a list of decorators or a ``pytestmark`` value."""
    ids: list[str] = []
    for node in nodes:
        found = _marker_ids(node)
        if found is not None:
            ids.extend(found)
    return ids


def _module_marks(tree: ast.Module) -> list[str]:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
        ):
            value = stmt.value
            return _marks(list(value.elts) if isinstance(value, ast.List) else [value])
    return []


def _walk(
    body: list[ast.stmt], prefix: str, inherited: list[str], out: dict[str, list[str]]
) -> None:
    for stmt in body:
        if isinstance(stmt, ast.ClassDef) and stmt.name.startswith("Test"):
            marks = inherited + _marks(stmt.decorator_list)
            _walk(stmt.body, f"{prefix}::{stmt.name}", marks, out)
        elif isinstance(
            stmt, ast.FunctionDef | ast.AsyncFunctionDef
        ) and stmt.name.startswith("test"):
            ids = inherited + _marks(stmt.decorator_list)
            if ids:
                out[f"{prefix}::{stmt.name}"] = list(dict.fromkeys(ids))


def file_citations(path: Path, name: str) -> dict[str, list[str]]:
    """``{"tests/x.py::test_y": ["ECH-1", ...]}`` for one test file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: dict[str, list[str]] = {}
    _walk(tree.body, name, _module_marks(tree), out)
    return out


def find_citations(tests_root: Path, root: Path) -> dict[str, list[str]]:
    """Every citing test under ``tests_root``, in path order."""
    out: dict[str, list[str]] = {}
    for path in sorted(tests_root.rglob("test_*.py")):
        out.update(file_citations(path, path.relative_to(root).as_posix()))
    return out
