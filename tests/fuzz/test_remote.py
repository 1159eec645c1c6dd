"""``ech fuzz`` against servers on 127.0.0.1.

Against our own server it finds nothing; against a server that hangs on an
unknown ECHClientHelloType (RFC 9849 §7) and one that accepts a tampered
HPKE suite (§7.1, ECH-77) it finds the violation, shrinks it to that
one mutation, writes a reproducer, and the reproducer replays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ech.fuzz import add_fuzz_command, run_fuzz
from tests.fuzz.servers import (
    INNER_NAME,
    HangsOnUnknownECHType,
    IgnoresClientSuite,
    Pki,
    make_pki,
    our_server,
    pumped_server,
)
from tests.harness.serve import find_ech_command

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(str(tmp_path_factory.mktemp("fuzz-pki")))


def ech_fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    """``ech fuzz ARGS``."""
    return subprocess.run(
        [*find_ech_command(), "fuzz", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def fuzz_args(pki: Pki, port: int, out: Path, *extra: str) -> list[str]:
    return [
        f"127.0.0.1:{port}",
        "--sni",
        INNER_NAME,
        "--ech-config-list",
        pki.config_list.to_base64(),
        "--ca",
        pki.ca_path,
        "--out",
        str(out),
        "--json",
        *extra,
    ]


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    for key in ("target", "examples", "kinds", "answers", "violation", "healthy"):
        assert key in report, key
    return report


@pytest.fixture
def our_port(pki: Pki) -> Iterator[int]:
    with our_server(pki.server_config()) as port:
        yield port


def test_fuzz_finds_nothing_in_our_server(
    pki: Pki, our_port: int, tmp_path: Path
) -> None:
    result = ech_fuzz(*fuzz_args(pki, our_port, tmp_path, "--examples", "100"))
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(result)
    assert report["violation"] is None
    assert report["healthy"] is True
    assert report["examples"] == 100
    assert set(report["kinds"]) == {"valid", "broken", "tampered"}
    # Every broken hello got the alert the RFC names.
    assert report["alert_mismatches"] == {}
    assert any(a.startswith("alert:") for a in report["answers"])
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_fuzz_finds_nothing_in_our_server_in_2000_examples(
    pki: Pki, our_port: int, tmp_path: Path
) -> None:
    result = ech_fuzz(
        *fuzz_args(pki, our_port, tmp_path, "--examples", "2000", "--seconds", "1500")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(result)
    assert report["violation"] is None
    assert report["examples"] >= 2000
    assert report["alert_mismatches"] == {}


def find_and_replay(
    pki: Pki, port: int, tmp_path: Path, invariant: str, mutation: str
) -> Path:
    result = ech_fuzz(
        *fuzz_args(pki, port, tmp_path, "--examples", "300", "--seed", "7"),
        "--timeout",
        "1",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(result)
    violation = report["violation"]
    assert violation["invariant"] == invariant
    assert violation["mutation"] == mutation  # shrunk to the one change that matters
    path = Path(report["reproducer"])
    document = json.loads(path.read_text())
    assert document["invariant"] == invariant
    assert path.with_suffix(".bin").read_bytes()
    assert document["replay"].startswith("ech fuzz --replay ")
    replayed = ech_fuzz("--replay", str(path), f"127.0.0.1:{port}", "--json")
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout)["reproduced"] is True
    return path


def test_fuzz_finds_a_server_that_hangs(pki: Pki, tmp_path: Path) -> None:
    with pumped_server(pki.server_config(), HangsOnUnknownECHType) as port:
        path = find_and_replay(
            pki, port, tmp_path, "hang", "unknown ECHClientHelloType"
        )
    # Against a correct server the same bytes get their alert: no reproduction.
    with our_server(pki.server_config()) as port:
        replayed = ech_fuzz("--replay", str(path), f"127.0.0.1:{port}", "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    outcome = json.loads(replayed.stdout)
    assert outcome["reproduced"] is False
    assert outcome["answer"] == "alert"


def test_fuzz_finds_a_server_that_accepts_a_tampered_suite(
    pki: Pki, tmp_path: Path
) -> None:
    with pumped_server(pki.server_config(), IgnoresClientSuite) as port:
        report = find_and_replay(
            pki, port, tmp_path, "accepted_tampered", "HPKE AEAD changed"
        )
    assert report.name.startswith("accepted_tampered-")


def test_add_fuzz_command_wires_into_a_parser() -> None:
    parser = argparse.ArgumentParser(prog="ech")
    commands = parser.add_subparsers(dest="command", required=True)
    add_fuzz_command(commands)
    args = parser.parse_args(["fuzz", "127.0.0.1:1", "--replay", "nothing.json"])
    assert args.func is run_fuzz
    assert args.address == ("127.0.0.1", 1)
    assert run_fuzz(args) == 2  # no such reproducer: a usage error


def test_usage_errors(pki: Pki) -> None:
    missing = ech_fuzz("127.0.0.1:1")
    assert missing.returncode == 2
    assert "--sni and --ech-config-list are required" in missing.stderr
    bad = ech_fuzz("127.0.0.1:1", "--sni", "x", "--ech-config-list", "not base64!")
    assert bad.returncode == 2
