"""Fuzzing a live ECH server: one TCP connection per hypothesis example.

Each example lets our own sans-IO client (:class:`ech.ClientConnection`)
build a real ECH ClientHello for the target's config, and may replace it in
flight, through ``ClientConnection.outgoing_message_hook``, by a broken or
tampered one drawn from :mod:`ech.testing.strategies`. The invariants any
correct server keeps (RFC 8446 §6, RFC 9849 §7.1):

* ``hang``: it answers every ClientHello within the time limit;
* ``closed_without_alert`` / ``garbage``: the answer is a ServerHello (or
  HelloRetryRequest) or a well-formed fatal alert (RFC 8446 §6.2), nothing
  else;
* ``accepted_invalid``: it refuses a hello the RFCs make it refuse (a draw
  whose ``lenient`` flag is unset);
* ``accepted_tampered``: it never completes a handshake, with ECH accepted,
  whose authenticated ECH fields were changed after sealing (§5.2, §7.1);
* ``valid_refused``: a valid ECH hello for its config is accepted, with a
  confirmation our client verifies (§6.1.4, §7.2), and completes;
* ``unhealthy``: after the run, it still completes a normal ECH handshake.

A violation is shrunk by hypothesis to a minimal example, which is written
as a replayable reproducer (:mod:`ech.fuzz.replay`).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.client.ech import inner_marker, select_config, with_extension_before_psk
from ech.config import ECHConfig, ECHConfigList
from ech.errors import Alert, ConnectionClosedError
from ech.events import ConnectionClosed, ECHRejected, ECHStatus, HandshakeComplete
from ech.testing.drawn import Drawn, SealedClientHello
from ech.testing.strategies import broken_client_hello_outers, broken_client_hellos
from ech.tls.enums import AlertDescription, ContentType, HandshakeType, NamedGroup
from ech.tls.extensions import Extension
from ech.tls.handshake import Epoch
from ech.tls.messages import HELLO_RETRY_REQUEST_RANDOM, ClientHello
from ech.tls.wire import frame_handshake

#: What an example sends: the real hello, a broken one, or a tampered one.
KINDS = ("valid", "broken", "tampered")

#: Record content types a server may start its answer with.
_ANSWER_TYPES = (ContentType.HANDSHAKE, ContentType.ALERT)


@dataclass(frozen=True)
class Target:
    """The server under test and how to reach it.

    Attributes:
        host, port: where it listens (loopback or a test namespace).
        server_name: the inner name our client asks for with ECH.
        configs: the server's ECHConfigList.
        cafile: CA to verify its certificates with; None verifies nothing.
        timeout: seconds the server has to answer each flight.
    """

    host: str
    port: int
    server_name: str
    configs: ECHConfigList
    cafile: str | None = None
    timeout: float = 5.0

    @property
    def config(self) -> ECHConfig:
        """The config our client uses (the first usable, RFC 9849 §6.1)."""
        config = select_config(self.configs)
        if config is None:
            raise ValueError("the ECHConfigList holds no config we can use")
        return config

    def client_config(
        self, hook: Callable[[ClientHello], ClientHello] | None
    ) -> ClientConfig:
        """Our client's settings: X25519 only, so the hello stays small."""
        return ClientConfig(
            cafile=self.cafile,
            verify_certificates=self.cafile is not None,
            key_share_groups=(NamedGroup.X25519,),
            client_hello_hook=hook,
        )


@dataclass
class Observation:
    """What one example sent and saw."""

    kind: str
    mutation: str = ""
    expected_alert: str | None = None
    lenient: bool = False
    rule: str = ""
    sent: bytes = b""
    inner_hello: bytes = b""
    answer: str = ""
    alert: str | None = None
    ech_status: str | None = None
    detail: str = ""
    note: str = ""
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly part (no bytes)."""
        return {
            "kind": self.kind,
            "mutation": self.mutation,
            "expected_alert": self.expected_alert,
            "lenient": self.lenient,
            "rule": self.rule,
            "answer": self.answer,
            "alert": self.alert,
            "ech_status": self.ech_status,
            "detail": self.detail,
            "note": self.note,
        }


class InvariantViolation(Exception):
    """A server broke one of the invariants of :mod:`ech.fuzz.engine`."""

    def __init__(self, invariant: str, observation: Observation) -> None:
        super().__init__(f"{invariant}: {observation.detail}")
        self.invariant = invariant
        self.observation = observation


# the first answer ------------------------------------------------------------------


@dataclass
class FirstAnswer:
    """How a server answered a ClientHello, from its first record."""

    answer: str  # server_hello | hello_retry_request | alert | hang | closed | garbage
    data: bytes = b""
    alert: AlertDescription | None = None
    detail: str = ""
    #: Something worth reporting that breaks no invariant.
    note: str = ""


def read_first_answer(sock: socket.socket, timeout: float) -> FirstAnswer:
    """Read until the first record is whole, then classify it (RFC 8446 §5.1).

    A handshake record must start with a ServerHello (HelloRetryRequest is
    one, told by its random); an alert record must be two bytes, fatal
    (RFC 8446 §6.2: every error alert is fatal) and a defined description.
    """
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        need = 5
        if len(data) >= 5:
            need = 5 + int.from_bytes(data[3:5], "big")
        if len(data) >= 5 and int.from_bytes(data[3:5], "big") > (1 << 14) + 256:
            return FirstAnswer("garbage", bytes(data), detail="record too long")
        if len(data) >= need and len(data) >= 5:
            break
        if len(data) >= 1 and data[0] not in _ANSWER_TYPES:
            return FirstAnswer("garbage", bytes(data), detail=f"record type {data[0]}")
        left = deadline - time.monotonic()
        if left <= 0:
            return FirstAnswer("hang", bytes(data), detail=f"no answer in {timeout} s")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            if data:
                return FirstAnswer("garbage", bytes(data), detail="truncated record")
            return FirstAnswer("closed", detail="closed without an alert")
        data += chunk
    content_type, version = data[0], int.from_bytes(data[1:3], "big")
    fragment = bytes(data[5:need])
    if version >> 8 != 3:
        return FirstAnswer(
            "garbage", bytes(data), detail=f"record version {version:#x}"
        )
    note = ""
    if version != 0x0303:
        # RFC 8446 §5.1: sent as 0x0303, but "MUST be ignored for all
        # purposes" by the receiver: a note, not a violation.
        note = f"record version {version:#06x}"
    if content_type == ContentType.ALERT:
        if len(fragment) != 2 or fragment[0] != 2:
            return FirstAnswer("garbage", bytes(data), detail="malformed alert")
        try:
            description = AlertDescription(fragment[1])
        except ValueError:
            return FirstAnswer("garbage", bytes(data), detail="undefined alert")
        return FirstAnswer("alert", bytes(data), description, note=note)
    if len(fragment) < 4 + 2 + 32 or fragment[0] != HandshakeType.SERVER_HELLO:
        return FirstAnswer("garbage", bytes(data), detail="not a ServerHello")
    is_hrr = fragment[4 + 2 : 4 + 2 + 32] == HELLO_RETRY_REQUEST_RANDOM
    answer = "hello_retry_request" if is_hrr else "server_hello"
    return FirstAnswer(answer, bytes(data), note=note)


# one example ------------------------------------------------------------------


@dataclass
class _Flight:
    """The first ClientHello as our client built it, and what we sent instead."""

    inner: ClientHello | None = None
    drawn: Drawn[Any] | None = None
    count: int = 0


def exchange(
    target: Target,
    kind: str,
    draw: Callable[[st.SearchStrategy[Any]], Any] | None,
) -> Observation:
    """Run one example against ``target``; raise :class:`InvariantViolation`.

    ``draw`` draws the mutation (None for the plain valid hello, as the
    final health check sends).
    """
    observation = Observation(kind)
    flight = _Flight()
    config = target.config
    started = time.monotonic()

    def hello_hook(hello: ClientHello) -> ClientHello:
        if draw is not None and kind == "valid":
            # Valid variety: unknown extensions, which a server must ignore
            # (RFC 8446 §4.2), copied into ClientHelloOuter as well.
            types = draw(st.lists(st.integers(0x1000, 0xFCFF), max_size=2, unique=True))
            for ext_type in types:
                body = draw(st.binary(max_size=24))
                hello = hello.with_extension(Extension(ext_type, body))
        flight.inner = with_extension_before_psk(hello, inner_marker())
        return hello

    def message_hook(epoch: Epoch, message: bytes) -> bytes:
        if epoch is not Epoch.INITIAL or message[0] != HandshakeType.CLIENT_HELLO:
            return message
        flight.count += 1
        if flight.count > 1 or kind == "valid" or draw is None:
            return message  # only the first ClientHello is changed
        outer = ClientHello.parse(message[4:])
        inner = flight.inner
        assert inner is not None  # noqa: S101  # the hello hook ran first
        sealed = SealedClientHello(outer, inner, b"", config)
        if kind == "tampered":
            drawn = draw(broken_client_hello_outers(sealed, tampered=True))
        elif draw(st.integers(0, 2)) == 0:
            drawn = draw(broken_client_hellos(outer))
        else:
            drawn = draw(broken_client_hello_outers(sealed))
        flight.drawn = drawn
        observation.mutation = drawn.mutation
        observation.rule = drawn.rule
        observation.lenient = drawn.lenient
        observation.expected_alert = drawn.alert.name.lower() if drawn.alert else None
        wire: bytes = drawn.wire
        return wire

    client = ClientConnection(
        target.client_config(hello_hook), target.server_name, ech_configs=target.configs
    )
    client.outgoing_message_hook = message_hook
    client.start()
    first = client.data_to_send()
    observation.sent = first
    if flight.inner is not None:
        observation.inner_hello = frame_handshake(
            HandshakeType.CLIENT_HELLO, flight.inner.encode()
        )
    try:
        with socket.create_connection(
            (target.host, target.port), target.timeout
        ) as sock:
            sock.sendall(first)
            answer = read_first_answer(sock, target.timeout)
            observation.answer = answer.answer
            observation.note = answer.note
            if answer.alert is not None:
                observation.alert = answer.alert.name.lower()
            _judge_first_answer(observation, answer)
            if (
                answer.answer in ("server_hello", "hello_retry_request")
                and kind != "broken"
            ):
                _finish(target, client, sock, answer.data, observation)
    finally:
        observation.seconds = time.monotonic() - started
    return observation


def _judge_first_answer(observation: Observation, answer: FirstAnswer) -> None:
    kind = observation.kind
    if answer.answer in ("hang", "closed", "garbage"):
        observation.detail = answer.detail
        invariant = (
            "closed_without_alert" if answer.answer == "closed" else answer.answer
        )
        raise InvariantViolation(invariant, observation)
    if answer.answer == "alert":
        if kind == "valid":
            observation.detail = f"refused a valid ECH hello with {observation.alert}"
            raise InvariantViolation("valid_refused", observation)
        return
    if kind == "broken" and not observation.lenient:
        observation.detail = (
            f"answered a ClientHello it must refuse ({observation.mutation}; "
            f"{observation.rule} names {observation.expected_alert})"
        )
        raise InvariantViolation("accepted_invalid", observation)


def _finish(
    target: Target,
    client: ClientConnection,
    sock: socket.socket,
    received: bytes,
    observation: Observation,
) -> None:
    """Pump the handshake to its end and judge the ECH outcome."""
    deadline = time.monotonic() + target.timeout
    data = received
    complete = False
    failure = ""
    while True:
        try:
            events = client.receive_data(data)
        except (Alert, ConnectionClosedError) as error:
            failure = f"our client failed: {error}"
            _send_quietly(sock, client.data_to_send())
            break
        _send_quietly(sock, client.data_to_send())
        if any(isinstance(e, HandshakeComplete) for e in events):
            complete = True
            break
        if any(isinstance(e, ECHRejected) for e in events):
            failure = "the server rejected ECH"
            break
        closed = [e for e in events if isinstance(e, ConnectionClosed)]
        if closed:
            failure = f"the server closed the connection ({closed[0].alert})"
            break
        left = deadline - time.monotonic()
        if left <= 0:
            observation.detail = f"handshake stalled for {target.timeout} s"
            raise InvariantViolation("hang", observation)
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            observation.detail = f"handshake stalled for {target.timeout} s"
            raise InvariantViolation("hang", observation) from None
        except OSError:
            data = b""
    observation.ech_status = client.ech_status.value
    if complete:
        client.close()
        _send_quietly(sock, client.data_to_send())
    accepted = complete and client.ech_status is ECHStatus.ACCEPTED
    if observation.kind == "tampered" and accepted:
        observation.detail = (
            f"completed with ECH accepted after {observation.mutation} (RFC 9849 §7.1)"
        )
        raise InvariantViolation("accepted_tampered", observation)
    if observation.kind == "valid" and not accepted:
        observation.detail = failure or f"ECH status {client.ech_status.value}"
        raise InvariantViolation("valid_refused", observation)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    if data:
        with contextlib.suppress(OSError):
            sock.sendall(data)


# a run ------------------------------------------------------------------


@dataclass
class RunResult:
    """What a fuzzing run did and found."""

    examples: int = 0
    seconds: float = 0.0
    answers: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    alert_mismatches: Counter[str] = field(default_factory=Counter)
    lenient_accepted: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    #: ``"kind: mutation"`` to the answers it got.
    by_mutation: dict[str, Counter[str]] = field(default_factory=dict)
    violation: InvariantViolation | None = None
    healthy: bool | None = None
    health_detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """The report's fields."""
        violation = None
        if self.violation is not None:
            violation = {
                "invariant": self.violation.invariant,
                **self.violation.observation.summary(),
            }
        return {
            "examples": self.examples,
            "seconds": round(self.seconds, 1),
            "kinds": dict(self.kinds),
            "answers": dict(self.answers),
            "alert_mismatches": dict(self.alert_mismatches),
            "lenient_accepted": dict(self.lenient_accepted),
            "notes": dict(self.notes),
            "by_mutation": {
                name: dict(counts) for name, counts in sorted(self.by_mutation.items())
            },
            "violation": violation,
            "healthy": self.healthy,
            "health_detail": self.health_detail,
        }


def run(
    target: Target,
    *,
    examples: int = 200,
    seconds: float = 300.0,
    seed: int | None = None,
) -> RunResult:
    """Fuzz ``target`` with up to ``examples`` examples, for about ``seconds``.

    Stops at the first violation, once hypothesis has shrunk it; the
    minimal example is ``result.violation.observation``. Then checks that
    the server still completes a normal ECH handshake.
    """
    result = RunResult()
    start = time.monotonic()
    failures: list[InvariantViolation] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        if not failures and time.monotonic() - start > seconds:
            return  # out of time: the remaining examples are empty
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        try:
            observation = exchange(target, kind, data.draw)
        except InvariantViolation as violation:
            failures.append(violation)
            raise
        if not failures:
            _count(result, observation)

    if seed is not None:
        one = hypothesis_seed(seed)(one)
    try:
        one()
    except InvariantViolation as violation:
        result.violation = failures[-1] if failures else violation
    result.seconds = time.monotonic() - start
    result.healthy, result.health_detail = health_check(target)
    return result


def _count(result: RunResult, observation: Observation) -> None:
    result.examples += 1
    result.kinds[observation.kind] += 1
    answer = observation.answer
    if observation.alert:
        answer = f"alert:{observation.alert}"
    result.answers[answer] += 1
    name = f"{observation.kind}: {observation.mutation or 'as built'}"
    result.by_mutation.setdefault(name, Counter())[answer] += 1
    expected = observation.expected_alert
    if expected and observation.alert and observation.alert != expected:
        result.alert_mismatches[
            f"{observation.mutation}: expected {expected}, got {observation.alert}"
        ] += 1
    if observation.note:
        result.notes[f"{observation.note} with {answer}"] += 1
    if observation.lenient and observation.answer != "alert":
        result.lenient_accepted[observation.mutation] += 1


def health_check(target: Target) -> tuple[bool, str]:
    """Whether the server still completes a plain ECH handshake."""
    try:
        observation = exchange(target, "valid", None)
    except InvariantViolation as violation:
        return False, f"{violation.invariant}: {violation.observation.detail}"
    except OSError as error:
        return False, f"cannot connect: {error}"
    return True, f"ECH {observation.ech_status}"


__all__ = [
    "KINDS",
    "FirstAnswer",
    "InvariantViolation",
    "Observation",
    "RunResult",
    "Target",
    "exchange",
    "health_check",
    "read_first_answer",
    "run",
]
