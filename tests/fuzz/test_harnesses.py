"""The parser fuzz harnesses (``fuzz/``): seeds, regressions, a short atheris run.

``make fuzz`` runs each harness for minutes; here each one replays its seed
corpus and every regression input through the contract (parse, or raise
one of the harness's allowed exceptions; see :mod:`fuzz.harnesses`), and
runs a few seconds under atheris, so a broken harness or a lost
instrumentation fails the normal suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ech.testing.strategies import mutations
from fuzz import corpus
from fuzz.harnesses import HARNESSES

ROOT = Path(__file__).resolve().parents[2]
SEEDS = corpus.seeds()


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_seed_corpus_keeps_the_contract(name: str) -> None:
    harness = HARNESSES[name]
    assert SEEDS[name], "no seeds"
    parsed = 0
    for data in SEEDS[name]:
        try:
            harness.target(data)
        except harness.allowed:
            continue
        parsed += 1
    # Seeds are real inputs: most must get past the first parser.
    assert parsed >= len(SEEDS[name]) // 4


def test_regression_inputs_keep_the_contract() -> None:
    """Every input a fuzzer once crashed on is now parsed or refused."""
    regressions = ROOT / "fuzz" / "regressions"
    for path in sorted(regressions.glob("*/*")):
        HARNESSES[path.parent.name].run(path.read_bytes())


@pytest.mark.parametrize("name", sorted(HARNESSES))
@settings(max_examples=60)
@given(data=st.data())
def test_mutated_seeds_keep_the_contract(name: str, data: st.DataObject) -> None:
    """The same check without atheris: seeds with a few random edits."""
    seed = data.draw(st.sampled_from(SEEDS[name]), label="seed")
    HARNESSES[name].run(data.draw(mutations(seed), label="input"))


def test_every_regression_folder_names_a_harness() -> None:
    folders = [p.name for p in (ROOT / "fuzz" / "regressions").iterdir() if p.is_dir()]
    assert set(folders) <= set(HARNESSES)


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_atheris_smoke(name: str, tmp_path: Path) -> None:
    """A second of coverage-guided fuzzing from the seeds finds no crash."""
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    for index, data in enumerate(SEEDS[name]):
        (seeds / str(index)).write_bytes(data)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.run",
            name,
            str(seeds),
            "-max_total_time=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert " cov: " in result.stderr  # instrumented: libFuzzer saw our branches
    assert not list(tmp_path.glob("crash-*"))
