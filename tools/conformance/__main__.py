"""``python -m tools.conformance [--check]``: write or check the matrix.

Exit status 1 when a test cites an unknown requirement, a code reference
names nothing, or (with ``--check``) the committed page is stale.
"""

from __future__ import annotations

import argparse
import sys

from tools.conformance.model import MATRIX, build
from tools.conformance.render import render


def main(argv: list[str] | None = None) -> int:
    """Build the matrix, then write it (or with ``--check`` compare it)."""
    parser = argparse.ArgumentParser(prog="python -m tools.conformance")
    parser.add_argument(
        "--check", action="store_true", help="fail if docs/conformance.rst is stale"
    )
    args = parser.parse_args(argv)
    matrix = build()
    problems = matrix.unknown_citations + [
        f"unresolved code reference {u}" for u in matrix.unresolved_code
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    text = render(matrix)
    if args.check:
        if MATRIX.read_text(encoding="utf-8") != text:
            print(
                f"{MATRIX} is stale: run python -m tools.conformance", file=sys.stderr
            )
            return 1
    else:
        MATRIX.write_text(text, encoding="utf-8")
    print(f"{len(matrix.requirements)} requirements, {len(matrix.gaps)} gaps")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
