"""The README's example of fuzzing a third-party ECH parser runs as written.

Its "third-party" parser here is our own server: the ClientHello in a record,
the alert it raises (or None when it answers).
"""

from __future__ import annotations

import re
from pathlib import Path

import ech
from ech.errors import Alert
from ech.pki import TestCA
from ech.testing.drawn import client_hello_record
from ech.tls.enums import AlertDescription

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_fuzzing_example_runs() -> None:
    text = README.read_text()
    section = text[text.index("## Fuzzing TLS stacks with ech") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    assert len(code.group(1).strip().splitlines()) <= 12
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(README), "exec"), namespace)  # noqa: S102
    key = namespace["KEY"]
    assert isinstance(key, ech.keys.ECHKey)
    ca = TestCA.create()
    config = ech.ServerConfig(
        certificates=(ca.issue("public.example", key_type="ed25519"),),
        ech_keys=(key,),
    )

    def their_server_parse(wire: bytes) -> AlertDescription | None:
        try:
            ech.ServerConnection(config).receive_data(client_hello_record(wire))
        except Alert as alert:
            return alert.description
        return None

    namespace["their_server_parse"] = their_server_parse
    test = namespace["test_their_server_refuses"]
    assert callable(test)
    test()
