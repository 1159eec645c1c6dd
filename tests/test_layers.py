"""Imports point down: no module of ``ech`` imports from a layer above its own.

The layers, lowest first. A module belongs to the first entry whose name is
the module or one of its packages. Imports inside a layer are free (Python
itself refuses cycles at import time); an import from a higher layer fails
this test, wherever it is written (top level, function body, or under
``TYPE_CHECKING``), because each is a dependency a reader must follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYERS: tuple[tuple[str, ...], ...] = (
    # 0. TLS 1.3: codec, records, key schedule, the record-level connection.
    ("ech.tls",),
    # 1. ECH proper: configs, keys, HPKE, the ClientHello transforms; the
    #    errors and events that carry ECH's outcome; the throwaway CA.
    (
        "ech.config",
        "ech.hpke",
        "ech.keys",
        "ech.extension",
        "ech.inner",
        "ech.confirmation",
        "ech.errors",
        "ech.events",
        "ech.pki",
    ),
    # 2. The sans-IO client and server handshakes and connections.
    ("ech.client", "ech.server"),
    # 3. DNS: HTTPS records, DoH resolution, zone answers (dnspython); and the
    #    public hypothesis strategies (test tooling). They draw only from the
    #    codec and the ECH transforms (layers 0-1), but sit above the sans-IO
    #    core (layer 2) so that no client or server module can come to
    #    depend on test tooling: the lowest layer where that holds.
    ("ech.dns", "ech.testing"),
    # 4. Adapters: sockets, asyncio (with the one asyncio server), HTTP.
    #    The conformance probes and ``ech fuzz`` sit with them: they drive the
    #    sans-IO client and server over sockets and aioquic as these adapters
    #    do (the fuzzer with the strategies of layer 3), and look configs up
    #    over DNS; nothing below may import them.
    (
        "ech.stream",
        "ech.dial",
        "ech.blocking",
        "ech.context",
        "ech.aio",
        "ech.http",
        "ech.quic",
        "ech.httpcore_backend",
        "ech.httpx",
        "ech.httpx2",
        "ech.probe",
        "ech.fuzz",
        "ech.arguments",
    ),
    # 5. ``ech serve``: keys on disk, metrics, status page, DoH app.
    ("ech.serve",),
    # 6. The command line, the demo and the package's public face.
    ("ech.cli", "ech.demo", "ech.__main__", "ech"),
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ech"


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``."""
    for index, names in enumerate(LAYERS):
        for name in names:
            if name == "ech":
                if module == "ech":
                    return index
            elif module == name or module.startswith(name + "."):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``ech`` import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from ech.cli import dns`` imports the submodule ech.cli.dns.
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return [(line, name) for line, name in found if name.split(".")[0] == "ech"]


def resolve(name: str) -> str:
    """The module an imported name lives in (drop a trailing attribute)."""
    while name:
        path = ROOT.joinpath(*name.split("."))
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            return name
        name = name.rpartition(".")[0]
    raise AssertionError("unreachable: 'ech' itself exists")


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    upward = [
        f"line {line}: {module} (layer {own}) imports {target} (layer {theirs})"
        for line, name in imported_modules(path, module)
        if (theirs := layer_of(target := resolve(name))) > own
    ]
    assert not upward, "\n".join(upward)


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a TLS module importing ECH is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ech.events import ECHStatus\nimport ech.tls.wire\n")
    names = [resolve(n) for _, n in imported_modules(bad, "ech.tls.bad")]
    assert names == ["ech.events", "ech.tls.wire"]
    assert [layer_of(n) > layer_of("ech.tls.bad") for n in names] == [True, False]
