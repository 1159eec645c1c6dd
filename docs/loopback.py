"""A loopback ECH site for the guides' examples (Sphinx's doctest builder).

``ech demo``'s server in a thread: ``secret.example`` behind the public name
``public.example`` on 127.0.0.1, with a throwaway CA written to a file, so
the examples connect for real and nothing leaves the machine.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ech import ECHConfigList
from ech.demo import DemoServer
from ech.keys import generate_ech_key
from ech.pki import TestCA


@dataclass
class Site:
    """What an example needs: the CA file, the configs and the port."""

    cafile: str
    configs: ECHConfigList
    port: int
    _stack: ExitStack = field(repr=False)

    def close(self) -> None:
        """Stop the server."""
        self._stack.close()


def start() -> Site:
    """Start the server; ``close()`` the returned site when done."""
    ca = TestCA.create()
    cafile = Path(tempfile.mkdtemp()) / "ca.pem"
    cafile.write_bytes(ca.pem)
    key = generate_ech_key("public.example")
    stack = ExitStack()
    server = stack.enter_context(DemoServer(ca, key).running())
    return Site(str(cafile), ECHConfigList((key.config,)), server.port, stack)
