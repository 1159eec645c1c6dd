"""Reproducers: the minimal failing example, written to disk and replayed.

A reproducer is a JSON file (with the raw flight beside it as ``.bin``)
holding the bytes our client sent, the ClientHelloInner they carried (so a
replay can tell from the ServerHello alone whether ECH was accepted, by
recomputing the confirmation, RFC 9849 §7.2), the target and the violated
invariant. Replaying sends the same bytes on a new connection and judges
the server's first answer against that invariant: no private state of the
original client is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ech.confirmation import accept_confirmation, confirmation_matches
from ech.extension import CONFIRMATION_LENGTH
from ech.fuzz.engine import FirstAnswer, InvariantViolation, Target, read_first_answer
from ech.tls.messages import ClientHello, ServerHello
from ech.tls.suites import SUITES
from ech.tls.transcript import Transcript
from ech.tls.wire import Reader

FORMAT = "ech-fuzz-reproducer/1"


def write_reproducer(
    directory: Path, target: Target, violation: InvariantViolation
) -> Path:
    """Write ``violation``'s minimal example under ``directory``; return the path."""
    observation = violation.observation
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(observation.sent).hexdigest()[:12]
    path = directory / f"{violation.invariant}-{digest}.json"
    path.with_suffix(".bin").write_bytes(observation.sent)
    document = {
        "format": FORMAT,
        "invariant": violation.invariant,
        **observation.summary(),
        "target": f"{target.host}:{target.port}",
        "server_name": target.server_name,
        "ech_config_list": target.configs.to_base64(),
        "timeout": target.timeout,
        "client_flight": base64.b64encode(observation.sent).decode("ascii"),
        "client_hello_inner": base64.b64encode(observation.inner_hello).decode(),
        "replay": f"ech fuzz --replay {path} {target.host}:{target.port}",
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


@dataclass
class ReplayResult:
    """What the server did with the reproducer's bytes this time."""

    invariant: str
    answer: str
    reproduced: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The report's fields."""
        return {
            "invariant": self.invariant,
            "answer": self.answer,
            "reproduced": self.reproduced,
            "detail": self.detail,
        }


def replay(
    path: Path, host: str, port: int, timeout: float | None = None
) -> ReplayResult:
    """Send a reproducer's flight to ``host:port`` and judge the answer."""
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ech fuzz reproducer")
    invariant = str(document["invariant"])
    flight = base64.b64decode(document["client_flight"])
    inner = base64.b64decode(document["client_hello_inner"])
    limit = float(timeout if timeout is not None else document["timeout"])
    with socket.create_connection((host, port), limit) as sock:
        sock.sendall(flight)
        answer = read_first_answer(sock, limit)
    accepted = _ech_accepted(answer, inner)
    reproduced = _reproduces(invariant, answer, accepted)
    detail = answer.detail or (
        f"alert {answer.alert.name.lower()}" if answer.alert is not None else ""
    )
    if accepted is not None:
        detail = (detail + "; " if detail else "") + (
            "ECH accepted" if accepted else "ECH not accepted"
        )
    return ReplayResult(invariant, answer.answer, reproduced, detail)


def _reproduces(invariant: str, answer: FirstAnswer, accepted: bool | None) -> bool:
    if invariant == "hang":
        return answer.answer == "hang"
    if invariant == "closed_without_alert":
        return answer.answer == "closed"
    if invariant == "garbage":
        return answer.answer == "garbage"
    if invariant == "accepted_invalid":
        return answer.answer in ("server_hello", "hello_retry_request")
    if invariant == "accepted_tampered":
        return bool(accepted)
    if invariant in ("valid_refused", "unhealthy"):
        return answer.answer not in ("server_hello", "hello_retry_request") or (
            accepted is False
        )
    return False


def _ech_accepted(answer: FirstAnswer, inner_hello: bytes) -> bool | None:
    """Whether the ServerHello confirms ECH for ``inner_hello`` (§7.2).

    None when there is no ServerHello (or a HelloRetryRequest: its
    confirmation needs the retry's transcript; not judged here).
    """
    if answer.answer != "server_hello" or not inner_hello:
        return None
    r = Reader(answer.data)
    r.u8(), r.u16()
    fragment = r.opaque(2)
    m = Reader(fragment)
    m.u8()
    sh = ServerHello.parse(m.opaque(3))
    suite = SUITES.get(sh.cipher_suite)
    if suite is None:
        return False
    inner = ClientHello.parse(inner_hello[4:])
    transcript = Transcript()
    transcript.set_algorithm(suite.hash)
    transcript.add(inner_hello)
    expected = accept_confirmation(suite.hash, inner.random, transcript, sh)
    return confirmation_matches(expected, sh.random[32 - CONFIRMATION_LENGTH :])


__all__ = ["FORMAT", "ReplayResult", "replay", "write_reproducer"]
