"""Every program in ``examples/`` runs against ``ech serve`` and says ECH worked.

The examples are what the README's library section points to; each runs
as a subprocess (as a reader would run it) against one ``ech serve --doh``
on loopback, with the name, DoH URL and CA on its command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import HIDDEN_NAME, IO_TIMEOUT, PUBLIC_NAME, Site

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: Each example, and lines its output must contain.
EXPECTED: dict[str, tuple[str, ...]] = {
    "httpx_sync.py": ("200 HTTP/2 accepted", f"the network saw {PUBLIC_NAME}"),
    "httpx_async.py": ("200 HTTP/2 accepted",),
    "stdlib_socket.py": ("HTTP/1.1 200 OK", "TLSv1.3", "ECH accepted first try"),
    "asyncio_streams.py": ("HTTP/1.1 200 OK", "ECH accepted - ECH accepted"),
    "strict_mode.py": ("refused: not_requested", "200 ECH accepted"),
    "custom_resolver.py": ("DoH query:", "HTTPS", "200 ECH accepted"),
}


def test_every_example_is_tested() -> None:
    found = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(site: Site, name: str) -> None:
    args = [site.url, "--ca", str(site.ca)]
    if name == "stdlib_socket.py":
        args += ["--ech-config-list", site.configs.to_base64()]
    else:
        args += ["--doh", site.doh]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=2 * IO_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result
    for expected in EXPECTED[name]:
        assert expected in result.stdout, result.stdout
    assert HIDDEN_NAME in site.url
