"""The ``ech`` command line: one module per command.

* :mod:`ech.cli.main`: the parser and :func:`main` (the ``ech`` console
  script is ``ech.cli:main``);
* :mod:`ech.cli.keygen`, :mod:`ech.cli.serve`, :mod:`ech.cli.connect`,
  :mod:`ech.cli.demo`, :mod:`ech.cli.diagnose`: a command each, its flags
  beside it;
* :mod:`ech.cli.dns`: ``dig``, ``get`` and ``dns-record`` (imported only
  when one runs, so other commands never load dnspython or httpx; ``get``
  runs on :mod:`ech.httpx`);
* :mod:`ech.arguments`: the argument types they share (with the probes
  and the fuzzer).

The flags and the ``--json`` field names are a contract scripts rely on; see
README.md. Exit status is 0 only when the command did what was asked.
"""

from __future__ import annotations

from ech.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
