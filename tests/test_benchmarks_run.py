"""The benchmark scripts still run (tiny counts). Nothing here asserts on time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = [
    ("handshake.py", ["--count", "3"], "server vs aioquic"),
    # The in-situ HPKE share is printed last, after the table.
    ("ech_handshake.py", ["--count", "3", "--idle", "3"], "SetupBaseR + Open"),
    ("quic_handshake.py", ["--count", "2", "--warmup", "1"], "server vs aioquic"),
    ("ech_kem.py", ["--count", "2"], "SetupR+Open"),
    ("ech_keys.py", ["--count", "2"], "trial"),
    ("ech_padding.py", ["--rounds", "1"], "overhead"),
    ("server_load.py", ["--clients", "2", "--duration", "1", "--idle", "5"], "RSS"),
    (
        "workers_load.py",
        ["--runs", "1", "--duration", "0.5", "--warmup", "0.2", "--clients", "2"],
        "handshakes/s",
    ),
]


#: Modules of benchmarks/ that are shared helpers, not benchmarks.
HELPERS = {"timing.py", "gobuild.py", "hpke_share.py"}


def test_every_benchmark_is_smoke_tested_and_run_by_make_bench() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - HELPERS
    assert scripts == {c[0] for c in CASES}
    makefile = (BENCHMARKS.parent / "Makefile").read_text()
    line = makefile.split("BENCHMARKS :=", 1)[1].split("\n\n", 1)[0]
    assert set(line.replace("\\", " ").split()) == {s[:-3] for s in scripts}


@pytest.mark.parametrize(("script", "args", "header"), CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs_and_prints_its_table(
    script: str, args: list[str], header: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert header in result.stdout, result.stdout[-2000:]
