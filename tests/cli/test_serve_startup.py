"""``ech serve`` at startup and in its log: the summary, one line per connection.

Also the warning of ``ech keygen --rotate`` when ``--retire-after`` is
shorter than the TTL ``ech serve --doh`` answers with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.tls_files import (
    HIDDEN_NAME,
    Files,
    connect_json,
    make_files,
)
from tests.harness.serve import serve_process


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return make_files(tmp_path_factory.mktemp("tls-cli"))


# log lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_one_log_line_per_connection(
    files: Files, tmp_path: Path, workers: int
) -> None:
    """Each connection is logged once, when it ends, with every field."""
    with serve_process(
        files.serve_args(), tmp_path / "serve.log", workers=workers
    ) as server:
        for _ in range(3):
            status, _ = connect_json(server, files)
            assert status == 0
        lines = server.wait_connections(3)
        log = server.log()
    assert len(lines) == 3
    # Before, a "handshake {json}" line repeated the same fields.
    assert " handshake {" not in log
    for line in lines:
        assert line["outcome"] == "completed"
        assert line["ech_status"] == "accepted"
        assert line["server_name"] == HIDDEN_NAME
        assert line["client_certificate_subject"] is None
        assert line["handshake_ms"] is not None
