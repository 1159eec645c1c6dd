"""Which requirements the conformance probes (``ech probe``) exercise.

Each probe check names the requirements it tests (``CheckInfo.items``, the
numbers of the ids); the matrix lists them beside the tests, since a probe
is how a reader checks another implementation against the same line.
"""

from __future__ import annotations

from ech.keys import generate_ech_key
from ech.probe.client import make_steps
from ech.probe.server_checks import CHECKS


def requirement_id(item: int) -> str:
    """The requirement id of a probe's item number."""
    return f"ECH-{item}"


def probe_citations() -> dict[str, list[str]]:
    """``{"ech probe: accept": ["ECH-54", ...], ...}`` for both probes."""
    out: dict[str, list[str]] = {}
    for check in CHECKS:
        out[f"ech probe {check.info.id}"] = [
            requirement_id(i) for i in check.info.items
        ]
    key = generate_ech_key("public.example")
    for step in make_steps(key, (), lambda: key):
        name = f"ech probe-client {step.info.id}"
        out[name] = [requirement_id(i) for i in step.info.items]
    return out
