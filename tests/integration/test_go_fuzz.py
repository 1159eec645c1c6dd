"""``ech fuzz`` against Go 1.27's crypto/tls server with an ECH key.

What the fuzzer finds in Go is a result, not a failure of ours: this test
asserts that the run happened and produced a well-formed report (and, if it
found a violation, a reproducer that replays). The report is printed (``-s``)
and, with ``ECH_FUZZ_GO_REPORT=FILE``, written there for the record.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ech.config import ECHConfigList
from ech.keys import generate_ech_key, write_ech_key
from interop.go_peer import GoServer
from tests.harness.serve import find_ech_command
from tests.integration.conftest import PKI, SERVER_NAME

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

PUBLIC_NAME = "public.test"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = os.environ.get("ECH_FUZZ_GO_EXAMPLES", "150")
SEED = os.environ.get("ECH_FUZZ_GO_SEED", "1")
FUZZ = (*find_ech_command(), "fuzz")


def test_ech_fuzz_against_go(go_peer: Path, pki: PKI, tmp_path: Path) -> None:
    certified = pki.ca.issue(SERVER_NAME, PUBLIC_NAME)
    cert_path, key_path = pki.ca.write(tmp_path, certified, "go-fuzz-leaf")
    key = generate_ech_key(PUBLIC_NAME, config_id=23, maximum_name_length=32)
    key_file = tmp_path / "ech.pem"
    write_ech_key(key_file, key)
    configs = ECHConfigList((key.config,)).to_base64()
    out = tmp_path / "out"
    with GoServer([(cert_path, key_path)], ech_keys=[key_file]) as server:
        address = f"127.0.0.1:{server.port}"
        result = subprocess.run(
            [
                *FUZZ,
                address,
                "--sni",
                SERVER_NAME,
                "--ech-config-list",
                configs,
                "--ca",
                str(pki.ca_path),
                "--examples",
                EXAMPLES,
                "--seconds",
                "600",
                "--seed",
                SEED,
                "--out",
                str(out),
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=800,
            check=False,
        )
        assert result.returncode in (0, 1), result.stdout + result.stderr
        report = json.loads(result.stdout)
        replayed: dict[str, object] | None = None
        if report["violation"] is not None:
            reproducer = Path(report["reproducer"])
            assert reproducer.is_file()
            again = subprocess.run(
                [*FUZZ, "--replay", str(reproducer), address, "--json"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert again.returncode in (0, 1), again.stdout + again.stderr
            replayed = json.loads(again.stdout)
            report["replayed"] = replayed
            report["reproducer_document"] = json.loads(reproducer.read_text())
    print(json.dumps(report, indent=2))  # the finding is the output
    destination = os.environ.get("ECH_FUZZ_GO_REPORT")
    if destination:
        Path(destination).write_text(json.dumps(report, indent=2) + "\n")
    assert report["examples"] > 0 or report["violation"] is not None
    assert set(report["kinds"]) <= {"valid", "broken", "tampered"}
    assert report["healthy"] in (True, False)
    assert (result.returncode == 1) == (
        report["violation"] is not None or not report["healthy"]
    )


FINDINGS = sorted((ROOT / "fuzz" / "findings" / "go-1.27.3").glob("*.json"))


def test_go_findings_replay(go_peer: Path, pki: PKI, tmp_path: Path) -> None:
    """The committed reproducers replay against a fresh Go server.

    Whether they still reproduce is Go's business (printed, not asserted):
    a newer Go that refuses them is good news. Any ECH key will do, since
    Go answers these hellos without decrypting them.
    """
    assert FINDINGS
    certified = pki.ca.issue(SERVER_NAME, PUBLIC_NAME)
    cert_path, key_path = pki.ca.write(tmp_path, certified, "go-replay-leaf")
    key_file = tmp_path / "ech.pem"
    write_ech_key(key_file, generate_ech_key(PUBLIC_NAME, config_id=3))
    outcomes = {}
    with GoServer([(cert_path, key_path)], ech_keys=[key_file]) as server:
        for path in FINDINGS:
            result = subprocess.run(
                [*FUZZ, "--replay", str(path), f"127.0.0.1:{server.port}", "--json"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode in (0, 1), result.stdout + result.stderr
            outcome = json.loads(result.stdout)
            assert outcome["reproduced"] == (result.returncode == 1)
            outcomes[path.name] = outcome
    print(json.dumps(outcomes, indent=2))  # Go's current behaviour, for the record
