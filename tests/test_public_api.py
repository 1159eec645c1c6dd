"""What an embedder imports from ``ech`` itself, and that ``import ech`` stays light."""

from __future__ import annotations

import subprocess
import sys

import ech


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in ech.__all__:
        value = getattr(ech, name)
        assert getattr(value, "__doc__", None), f"ech.{name} has no docstring"
    for name in (
        "ECHClientContext",
        "ECHConfigList",
        "ECHRejectedError",
        "ECHUnavailableError",
        "ECHStatus",
        "ECHReason",
        "ECHOutcome",
        "DoHResolver",
        "ECHTransport",
        "AsyncECHTransport",
    ):
        assert name in ech.__all__


def test_import_ech_loads_no_dns_http_client_or_quic() -> None:
    code = (
        "import sys, ech; heavy = ('dns', 'httpx', 'httpx2', 'httpcore',"
        " 'httpcore2', 'aioquic'); print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"
