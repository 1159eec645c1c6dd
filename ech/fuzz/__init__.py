"""``ech fuzz``: hypothesis against a live ECH server, and replays.

The engine is :mod:`ech.fuzz.engine` (invariants, one connection per
example), reproducers are :mod:`ech.fuzz.replay`, and the command-line
wiring is :mod:`ech.fuzz.cli`: ``add_fuzz_command(subparsers)`` adds the
subcommand to ``ech``, ``run_fuzz(args)`` runs it, ``python -m ech.fuzz``
runs it alone. Importing this package does not import hypothesis.
"""

from __future__ import annotations

from ech.fuzz.cli import add_fuzz_command, run_fuzz

__all__ = ["add_fuzz_command", "run_fuzz"]
