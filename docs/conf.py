"""Sphinx configuration: API reference, guides, conformance matrix, CLI.

``make docs`` builds with warnings as errors and nitpicky references
(``-W --keep-going -n``), so a docstring that breaks reST or names
something that does not exist fails the build. The API pages are written
at build time from :data:`PUBLIC_MODULES` (see :mod:`apipages`), so a name
added to a public ``__all__`` is documented without touching the docs.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from sphinx.application import Sphinx

if TYPE_CHECKING:
    from sphinx.config import Config as SphinxConfig

_What = Literal["module", "class", "exception", "function", "method"]

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

project = "ech"
author = "the ech authors"
copyright = "the ech authors"
release = _version("tls-ech")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinxarg.ext",
    "apipages",
]

# A class that ``ech`` re-exports is described once but reachable under
# several names (``ech.ClientConfig``, ``ech.client.ClientConfig`` and the
# canonical ``ech.client.config.ClientConfig``); an unqualified name in a
# signature then matches all of them. They are one object, so the warning
# that "more than one target" matched says nothing. (The one public short
# name with two meanings, ``Handler`` in ech.aio and ech.http, resolves
# within its own module first.) Missing targets still fail the build
# (ref.class, ref.func, ...).
suppress_warnings = ["ref.python"]

exclude_patterns = ["_build", "conformance/*.toml"]
html_theme = "alabaster"
html_title = f"ech {release}"
# The conformance matrix is a wide table: let pages use the window.
html_theme_options = {
    "page_width": "95%",
    "sidebar_width": "220px",
    "body_max_width": "none",
}
html_static_path = ["_static"]
html_css_files = ["matrix.css"]

# The examples' hypothesis runs: no example database in the tree, and no
# deadline or speed health check, which a loaded machine (CI beside other
# jobs) trips without any fault in the code under test.
doctest_global_setup = """
from hypothesis import HealthCheck, settings as _settings
_settings.register_profile(
    "docs", deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_settings.load_profile("docs")
"""

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# What the nitpicky build may leave unresolved, and why. No intersphinx: the
# build runs offline (CI reaches only package registries), so the standard
# library and third-party types render as plain text. Our own internal
# modules are not part of the documented API; references into them render
# as text too. References to documented modules must resolve.
nitpick_ignore_regex = [
    # Our internal modules and private names: not part of the documented API.
    (
        r"py:.*",
        r"(ech\.)?(tls|client\.(ech|handshake)|server\.(ech|handshake|split"
        r"|padding|anti_replay|events)|inner|extension|confirmation|pki|stream"
        r"|aio\.\w+|http\.\w+|quic\.(tls|connection)|dns\.(records|resolver|cache"
        r"|discovery|doh_server|publish)|serve|probe|fuzz|testing\.\w+|cli\.\w+"
        r"|arguments|httpcore_backend)(\..*)?",
    ),
    (r"py:.*", r"(.*\.)?_\w+"),
    # The standard library and third-party packages.
    (
        r"py:.*",
        r"(builtins|typing|typing_extensions|collections|abc|enum|os|io"
        r"|ssl|socket|asyncio|pathlib|datetime|ipaddress|logging|argparse|random"
        r"|contextlib|concurrent|types|dataclasses|threading)(\..*)?",
    ),
    (
        r"py:.*",
        r"(httpx|httpx2|httpcore|httpcore2|dns|aioquic|cryptography|h2|h11"
        r"|hypothesis|pyhpke|x509)(\..*)?",
    ),
    (
        r"py:.*",
        r"(Self|T|T_co|P|R|Callable|Awaitable|Iterator|AsyncIterator"
        r"|Sequence|Mapping|Iterable|Collection|Literal|Any|Buffer|Path"
        r"|StreamReader|StreamWriter|TracebackType)",
    ),
    (r"py:class", r".*\.(T|T_co|Self|S|P)"),
    # Aliases and protocols named in signatures only (typing.TYPE_CHECKING).
    (
        r"py:class",
        r"(Verify|Discovery|ReadableBuffer|WriteableBuffer|ForwardToBackend)",
    ),
    # ServerConfig.require_ech's type: configuration, reached through
    # ServerConfig, not exported on its own.
    (r"py:class", r"(ech\.server\.config\.)?RequireECH"),
]


def _google_docstrings(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    lines: list[str],
) -> None:
    """Napoleon's Google-style parsing, for modules, classes and functions only.

    Napoleon reads the first line of an attribute's docstring as ``type:
    description``; ours are sentences that may contain a colon ("No configs
    given, no resolver asked: ..."), so attributes and properties keep
    their text as written.
    """
    if what in ("attribute", "property", "data"):
        return
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    # Napoleon's Config stands in for Sphinx's: it carries the napoleon_*
    # values GoogleDocstring reads, without registering napoleon's own hook.
    config = cast("SphinxConfig", Config(napoleon_use_ivar=True))
    kind = cast("_What", what)
    lines[:] = GoogleDocstring(lines, config, app, kind, name, obj, options).lines()


def setup(app: Sphinx) -> None:
    """Connect :func:`_google_docstrings` (napoleon's own hook is not loaded)."""
    app.connect("autodoc-process-docstring", _google_docstrings)
