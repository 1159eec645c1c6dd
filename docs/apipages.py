"""Write the API reference pages at build time, one per public module.

A public module is one listed in :data:`PUBLIC_MODULES`; its public names
are its ``__all__`` (``ech.blocking`` has none: autodoc then takes what the
module defines). A name that :mod:`ech` itself re-exports is documented
once, on the ``ech`` page; the other pages point there, so a reader meets
one description per class. ``tests/test_docs.py`` checks that every public
name ends up in the built inventory.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

#: (module, what a reader finds there), in reading order.
PUBLIC_MODULES: tuple[tuple[str, str], ...] = (
    ("ech", "What an embedder imports"),
    ("ech.context", "ssl-shaped sockets"),
    ("ech.httpx", "httpx transports"),
    ("ech.httpx2", "httpx2 transports"),
    ("ech.blocking", "Sockets"),
    ("ech.aio", "asyncio"),
    ("ech.quic", "QUIC"),
    ("ech.quic.client", "HTTP/3 client"),
    ("ech.quic.server", "HTTP/3 server"),
    ("ech.http", "HTTP"),
    ("ech.dial", "Dialing policy: discovery, GREASE, one retry"),
    ("ech.dns", "DNS: HTTPS records over DoH (RFC 9848)"),
    ("ech.client", "The sans-IO client"),
    ("ech.server", "The sans-IO server"),
    ("ech.config", "ECHConfig and ECHConfigList"),
    ("ech.keys", "ECH key files"),
    ("ech.hpke", "HPKE"),
    ("ech.errors", "Errors"),
    ("ech.events", "Events"),
    ("ech.testing", "hypothesis strategies"),
    ("ech.cli", "The command line"),
)


def public_names(module_name: str) -> list[str]:
    """The module's ``__all__``, or [] when it has none."""
    return list(getattr(importlib.import_module(module_name), "__all__", []))


def on_ech_page(module_name: str) -> list[str]:
    """Names of ``module_name`` that the ``ech`` page documents already."""
    if module_name == "ech":
        return []
    top = importlib.import_module("ech")
    module = importlib.import_module(module_name)
    return [
        name
        for name in public_names(module_name)
        if name in top.__all__ and getattr(top, name) is getattr(module, name)
    ]


#: Connections: their byte-pumping methods (``receive_data``,
#: ``data_to_send``, ``send``, ``close``) come from an internal base class,
#: and belong on their page.
WITH_INHERITED = ("ClientConnection", "ServerConnection")


def _aliases(module_name: str) -> list[str]:
    """``py:data`` entries for type aliases ``__all__`` re-exports.

    autodoc finds a ``#:`` comment only in the module it documents; an alias
    defined in a submodule would otherwise go undocumented.
    """
    module = importlib.import_module(module_name)
    lines: list[str] = []
    for name in public_names(module_name):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            continue
        for source in (module_name, *_submodules(module_name)):
            docs = ModuleAnalyzer.for_module(source).find_attr_docs()
            if ("", name) in docs and source != module_name:
                lines += [f".. py:data:: {name}", ""]
                lines += [f"   {line}" for line in docs["", name] if line.strip()]
                lines += [f"   (Defined in ``{source}``.)", ""]
                break
    return lines


def _submodules(module_name: str) -> list[str]:
    return sorted(m for m in sys.modules if m.startswith(module_name + "."))


def page(module_name: str, title: str) -> str:
    """The reST of one module's page."""
    heading = f"``{module_name}``: {title}"
    lines = [heading, "=" * len(heading), "", f".. automodule:: {module_name}"]
    shared = on_ech_page(module_name)
    excluded = [*shared, *(WITH_INHERITED if module_name == "ech" else ())]
    if excluded:
        lines.append(f"   :exclude-members: {', '.join(excluded)}")
    lines.append("")
    lines += _aliases(module_name)
    if module_name == "ech":
        for name in WITH_INHERITED:
            lines += [
                f".. autoclass:: {name}",
                "   :inherited-members:",
                "   :undoc-members:",
                "",
            ]
    if shared:
        lines += ["", "Also here, and documented with :mod:`ech`:", ""]
        module = importlib.import_module(module_name)
        for name in shared:
            lines += [
                f".. py:{_directive(getattr(module, name))}:: {name}",
                "   :no-contents-entry:",
                "",
                f"   The same object as :obj:`ech.{name}`.",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def _directive(obj: object) -> str:
    """The py domain directive that describes ``obj``."""
    if isinstance(obj, type):
        return "exception" if issubclass(obj, BaseException) else "class"
    return "function" if callable(obj) else "data"


def write_pages(app: Sphinx) -> None:
    """``builder-inited``: write ``api/*.rst`` and the index of them."""
    directory = Path(app.srcdir) / "api"
    directory.mkdir(exist_ok=True)
    index = ["API reference", "=" * 13, "", ".. toctree::", "   :maxdepth: 1", ""]
    for module_name, title in PUBLIC_MODULES:
        text = page(module_name, title)
        path = directory / f"{module_name}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        index.append(f"   {module_name}")
    (directory / "index.rst").write_text("\n".join(index) + "\n")


def undocumented(objects: set[str]) -> list[str]:
    """Public names with no entry among the documented ``objects``."""
    return [
        f"{module_name}.{name}"
        for module_name, _ in PUBLIC_MODULES
        for name in public_names(module_name)
        if f"{module_name}.{name}" not in objects
    ]


def check_documented(app: Sphinx, env: BuildEnvironment) -> None:
    """``env-check-consistency``: every public name has an entry.

    A warning, so ``-W`` fails the build: a name in a public ``__all__``
    without a docstring or ``#:`` comment is skipped by autodoc silently.
    """
    documented = {entry[0] for entry in env.get_domain("py").get_objects()}
    for name in undocumented(documented):
        logging.getLogger(__name__).warning("public name not documented: %s", name)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the page writer and the completeness check."""
    app.connect("builder-inited", write_pages)
    app.connect("env-check-consistency", check_documented)
    return {"parallel_read_safe": True}
