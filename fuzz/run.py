"""Run one harness under atheris: ``python -m fuzz.run NAME [libFuzzer flags]``.

``ech`` (and dnspython, for the HTTPS record harness) is instrumented for
coverage as it is imported, so libFuzzer's ``cov:`` counts our branches.
Anything libFuzzer accepts goes after the name: a corpus directory,
``-max_total_time=S``, ``-artifact_prefix=DIR/``, ``-runs=N``. A crash
(an exception the harness's contract does not allow) stops the run with
the input written as ``crash-<sha1>``; ``make fuzz`` then fails.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["ech", "dns", "fuzz"]):
    from fuzz.harnesses import HARNESSES


def main(argv: list[str]) -> None:
    """Pick the harness named by ``argv[1]`` and hand the rest to libFuzzer."""
    if len(argv) < 2 or argv[1] not in HARNESSES:
        names = ", ".join(HARNESSES)
        sys.exit(f"usage: python -m fuzz.run NAME [libFuzzer flags]; NAME: {names}")
    harness = HARNESSES[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], harness.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
