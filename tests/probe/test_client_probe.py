"""``ech probe-client`` in process: our client passes, round after round.

The probe serves in a thread; our blocking client (``ech.blocking.connect``,
which retries once on rejection) connects once per step. A client that
never retries fails the one control that needs a retry, and the
second-rejection check cannot be judged for it.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading

import pytest

import ech
from ech.blocking import connect
from ech.errors import TLSError
from ech.http import fetch
from ech.keys import ECHKey
from ech.probe.client import probe_client
from ech.probe.report import Report, Result
from tests.probe.servers import INNER_NAME, ProbePKI, config_list

pytestmark = pytest.mark.timeout(120)

STEPS = 10


def run(pki: ProbePKI, key: ECHKey, *, retry: bool, rounds: int) -> tuple[Report, str]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    out: dict[str, Report] = {}
    log = io.StringIO()

    def serve() -> None:
        out["report"] = probe_client(
            listener,
            (pki.both, pki.inner_only),
            key,
            rounds=rounds,
            timeout=5,
            grace=0.5,
            out=log,
        )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = ech.ClientConfig(cafile=str(pki.ca_file), alpn_protocols=("http/1.1",))
    for _ in range(STEPS * rounds):
        with (
            contextlib.suppress(TLSError, OSError),
            connect(
                "127.0.0.1",
                port,
                config,
                INNER_NAME,
                ech_configs=config_list(key),
                ech_retry=retry,
                timeout=5,
            ) as tls,
        ):
            fetch(tls, "/", host=INNER_NAME)
    thread.join(60)
    listener.close()
    return out["report"], log.getvalue()


def test_our_client_passes_every_round(probe_pki: ProbePKI, probe_key: ECHKey) -> None:
    report, log = run(probe_pki, probe_key, retry=True, rounds=2)
    assert len(report.results) == STEPS
    assert all(r.result is Result.PASS for r in report.results), report.render()
    assert log.count("round ") == 2
    assert "next connection: wrong-confirmation: the client must" in log
    json = report.to_json()
    assert json["probe"] == "client"
    assert json["summary"]["pass"] == STEPS


def test_a_client_that_never_retries(probe_pki: ProbePKI, probe_key: ECHKey) -> None:
    report, _ = run(probe_pki, probe_key, retry=False, rounds=1)
    differences = {
        r.info.id: r.result for r in report.results if r.result is not Result.PASS
    }
    assert differences == {
        "reject-retry": Result.FAIL,
        "second-rejection": Result.NOT_APPLICABLE,
    }
    assert not report.ok
